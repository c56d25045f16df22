"""The model card of a package: what it was trained on, how it was measured, its licences."""

from __future__ import annotations

import html
import json

from PySide6 import QtWidgets

from app.inference.manifest import ModelManifest


def card_html(model: ModelManifest) -> str:
    card = model.card
    rows = [("Model", f"{model.name} {model.version}"), ("Task", model.task),
            ("Modality", ", ".join(model.modalities)), ("Classes", ", ".join(model.classes)),
            ("Input", f"{model.input.size[1]} x {model.input.size[0]}, {model.input.channels} channel(s), "
                      f"{model.input.resize}")]
    rows += [(key.replace("_", " ").capitalize(), value) for key, value in card.items()]
    rows += [(f"Licence ({key})", value) for key, value in model.licence.items()]
    cells = "".join(f"<tr><th align=left valign=top>{html.escape(k)}</th><td>{_as_html(v)}</td></tr>"
                    for k, v in rows)
    return f"<table cellspacing=4>{cells}</table>"


def _as_html(value) -> str:
    if isinstance(value, (dict, list)):
        return f"<pre>{html.escape(json.dumps(value, indent=1))}</pre>"
    return html.escape(str(value))


class ModelCardDialog(QtWidgets.QDialog):
    def __init__(self, model: ModelManifest, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Model card: {model.name}")
        self.resize(640, 560)
        layout = QtWidgets.QVBoxLayout(self)
        self.text = QtWidgets.QTextBrowser()
        self.text.setHtml(card_html(model))
        layout.addWidget(self.text)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
