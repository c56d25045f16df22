"""The PACS connection form of the PACS panel: AE titles, host, port, DICOMweb URL and the storage SCP, checked by
app.pacs.settings and saved per user there; the panel runs Test connection on what the form holds."""

from __future__ import annotations

from dataclasses import asdict

from PySide6 import QtCore, QtWidgets

from app.pacs.settings import PacsSettings, PacsSettingsError, from_mapping, save_settings


class PacsSettingsForm(QtWidgets.QWidget):
    saved = QtCore.Signal(str)  # where
    failed = QtCore.Signal(str)  # why not

    def __init__(self, settings: PacsSettings, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._base = settings  # fields the form does not show (TLS, cache) are kept as they are
        form = QtWidgets.QFormLayout(self)
        self.host_edit = QtWidgets.QLineEdit(settings.host)
        self.port_box = self._port(settings.port)
        self.called_edit = QtWidgets.QLineEdit(settings.called_ae)
        self.calling_edit = QtWidgets.QLineEdit(settings.calling_ae)
        self.web_edit = QtWidgets.QLineEdit(settings.dicomweb_url, placeholderText="http://host:8042/dicom-web")
        self.prefer_web_box = QtWidgets.QCheckBox("Search, retrieve and send over DICOMweb")
        self.prefer_web_box.setChecked(settings.prefer_dicomweb)
        self.move_box = QtWidgets.QCheckBox("Retrieve by C-MOVE to our storage SCP (instead of C-GET)")
        self.move_box.setToolTip("For a PACS without C-GET: it must know our AE title at the address and port below")
        self.move_box.setChecked(settings.retrieve_by_move)
        self.scp_address_edit = QtWidgets.QLineEdit(settings.scp_address)
        self.scp_address_edit.setToolTip("127.0.0.1 (this computer only) unless the PACS is elsewhere")
        self.scp_port_box = self._port(settings.scp_port)
        self.allowed_edit = QtWidgets.QLineEdit(", ".join(settings.scp_allowed_aes))
        self.allowed_edit.setToolTip("Calling AE titles the storage SCP accepts, comma-separated")
        form.addRow("PACS host", self._address_row(self.host_edit, self.port_box))
        form.addRow("PACS AE title", self.called_edit)
        form.addRow("Our AE title", self.calling_edit)
        form.addRow("DICOMweb URL", self.web_edit)
        form.addRow("", self.prefer_web_box)
        form.addRow("", self.move_box)
        form.addRow("Receive on", self._address_row(self.scp_address_edit, self.scp_port_box))
        form.addRow("Accept from", self.allowed_edit)
        self.save_button = QtWidgets.QPushButton("Save")
        self.save_button.clicked.connect(self.save)
        self.test_button = QtWidgets.QPushButton("Test connection")
        self.test_button.setToolTip("C-ECHO, and a QIDO-RS search when a DICOMweb URL is set")
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.test_button)
        buttons.addWidget(self.save_button)
        buttons.addStretch(1)
        form.addRow(buttons)

    @staticmethod
    def _address_row(address: QtWidgets.QLineEdit, port: QtWidgets.QSpinBox) -> QtWidgets.QHBoxLayout:
        """An address field and its port on one form row."""
        row = QtWidgets.QHBoxLayout()
        row.addWidget(address, 1)
        row.addWidget(QtWidgets.QLabel("port"))
        row.addWidget(port)
        return row

    @staticmethod
    def _port(value: int) -> QtWidgets.QSpinBox:
        box = QtWidgets.QSpinBox()
        box.setRange(1, 65535)
        box.setValue(value)
        return box

    def settings(self) -> PacsSettings:
        """The settings the form holds; PacsSettingsError naming the field that cannot be used."""
        values = asdict(self._base)
        values.update(host=self.host_edit.text().strip(), port=self.port_box.value(),
                      called_ae=self.called_edit.text(), calling_ae=self.calling_edit.text(),
                      dicomweb_url=self.web_edit.text().strip(), prefer_dicomweb=self.prefer_web_box.isChecked(),
                      retrieve_by_move=self.move_box.isChecked(),
                      scp_address=self.scp_address_edit.text().strip(), scp_port=self.scp_port_box.value(),
                      scp_allowed_aes=[t.strip() for t in self.allowed_edit.text().split(",") if t.strip()])
        if not values["host"]:
            raise PacsSettingsError("host: the PACS's host name or address is needed")
        return from_mapping(values)

    def save(self) -> None:
        try:
            settings = self.settings()
            path = save_settings(settings)
        except (PacsSettingsError, OSError) as error:
            self.failed.emit(f"Not saved: {error}")
            return
        self._base = settings
        self.saved.emit(str(path))
