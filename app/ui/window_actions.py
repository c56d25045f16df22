"""Actions, menus and toolbar of the main window, and the reading actions they run on the active viewport."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from app.core.text import printable
from app.ui.shortcuts import MOUSE_HELP, SHORTCUTS, keys_for


class WindowActions:
    """Mixed into MainWindow (app/ui/main_window.py), whose widgets and loader it uses."""

    def _build_actions(self) -> None:
        handlers = {
            "open_files": self.choose_files, "open_folder": self.choose_folder,
            "fit": lambda: self._each(lambda s: s.fit()),
            "one_to_one": lambda: self._each(lambda s: s.one_to_one()),
            "invert": lambda: self._each(lambda s: s.set_invert(not s.invert)),
            "flip_horizontal": lambda: self._each(lambda s: s.flip(horizontal=True)),
            "flip_vertical": lambda: self._each(lambda s: s.flip(horizontal=False)),
            "link": None, "reset": self.reset_view, "next_preset": self.next_preset,
            "next_frame": lambda: self._each(lambda s: s.set_frame(s.frame + 1)),
            "previous_frame": lambda: self._each(lambda s: s.set_frame(s.frame - 1)),
            "next_study": lambda: self.session.step(1), "previous_study": lambda: self.session.step(-1),
            "patient_name": None, "cancel": self.cancel_loading, "help": self.show_help, "quit": self.close,
            "grid": self.next_grid, "compare_prior": self.compare_with_prior, "run_ai": self.ai.run,
            "hide_overlays": None, "export_view": self.export_view,
            "export_seg": self.export_segmentation, "pacs": self.show_pacs,
            "send_results": self.results_sender.send,
        }
        self.actions: dict[str, QtGui.QAction] = {}
        for shortcut in SHORTCUTS:
            action = QtGui.QAction(shortcut.text, self)
            action.setShortcut(QtGui.QKeySequence(shortcut.keys))
            action.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
            if handlers[shortcut.action] is not None:
                action.triggered.connect(handlers[shortcut.action])
            self.addAction(action)
            self.actions[shortcut.action] = action
        link = self.actions["link"]
        link.setCheckable(True)
        link.toggled.connect(self.session.set_link)
        names = self.actions["patient_name"]
        names.setCheckable(True)
        names.setChecked(self.settings.show_patient_name())
        names.toggled.connect(self._set_show_patient_name)
        hide = self.actions["hide_overlays"]
        hide.setCheckable(True)
        hide.toggled.connect(self.session.layers.set_all_hidden)
        self.actions["fit"].setIconText("Fit")
        self.actions["one_to_one"].setIconText("1:1")
        self.actions["invert"].setIconText("Invert")
        self.actions["link"].setIconText("Link")
        self.actions["reset"].setIconText("Reset")
        self.actions["open_files"].setIconText("Open")
        self.actions["pacs"].setText("&PACS…")
        self.actions["send_results"].setText("&Send Results to PACS")

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addAction(self.actions["open_files"])
        file_menu.addAction(self.actions["open_folder"])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addAction("Open &Demo Study", self.open_demo)
        file_menu.addAction(self.actions["pacs"])
        file_menu.addSeparator()
        file_menu.addAction("&Import Model…", self.import_model)
        file_menu.addSeparator()
        file_menu.addAction(self.actions["export_view"])
        file_menu.addAction(self.actions["export_seg"])
        file_menu.addSeparator()
        file_menu.addAction(self.actions["quit"])
        view_menu = menu.addMenu("&View")
        for name in ("fit", "one_to_one", "invert", "flip_horizontal", "flip_vertical", "reset", "next_preset", "link",
                     "grid", "compare_prior", "next_frame",
                     "previous_frame", "next_study", "previous_study", "patient_name"):
            view_menu.addAction(self.actions[name])
        view_menu.addAction(self.side_dock.toggleViewAction())
        ai_menu = menu.addMenu("&AI")
        ai_menu.addAction(self.actions["run_ai"])
        ai_menu.addAction(self.actions["hide_overlays"])
        ai_menu.addAction(self.actions["send_results"])
        ai_menu.addAction(self.ai.toggleViewAction())
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.actions["help"])
        help_menu.addAction("&About RadLens", self.show_about)

        toolbar = self.addToolBar("Reading")
        toolbar.setObjectName("readingToolbar")
        toolbar.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextOnly)
        toolbar.addAction(self.actions["open_files"])
        toolbar.addSeparator()
        for name in ("fit", "one_to_one", "invert", "link", "reset"):
            toolbar.addAction(self.actions[name])
        toolbar.addSeparator()
        self.actions["run_ai"].setIconText("Run AI")
        self.actions["hide_overlays"].setIconText("Hide AI")
        toolbar.addAction(self.actions["run_ai"])
        toolbar.addAction(self.actions["hide_overlays"])
        toolbar.addSeparator()
        toolbar.addWidget(QtWidgets.QLabel(" W/L "))
        self.preset_box = QtWidgets.QComboBox()
        self.preset_box.setMinimumWidth(140)
        self.preset_box.setToolTip(f"Window/level presets of the active viewport ({keys_for('next_preset')})")
        self.preset_box.activated.connect(lambda i: self._select_preset(self.preset_box.itemText(i)))
        toolbar.addWidget(self.preset_box)

    def _each(self, change) -> None:
        for state in self.session.target_states():
            change(state)

    def reset_view(self) -> None:
        for state in self.session.states.values():
            state.reset()

    def next_preset(self) -> None:
        for state in self.session.target_states():
            names = [p.name for p in state.presets]
            index = names.index(state.preset_name) + 1 if state.preset_name in names else 0
            self._select_preset(names[index % len(names)])

    def _select_preset(self, name: str) -> None:
        self._each(lambda s: s.select_preset(name))
        self._on_active()

    def _on_active(self, *_) -> None:
        """The preset box lists the active image's presets (images arrive after they become active)."""
        self.preset_box.clear()
        state = self.session.active_state
        if state is None:
            return
        self.preset_box.addItems([p.name for p in state.presets])
        if state.preset_name:
            self.preset_box.setCurrentText(state.preset_name)
        else:
            self.preset_box.setCurrentIndex(-1)

    def next_grid(self) -> None:
        """Side-by-side images: square grid, one row, one column, and round again."""
        self.statusBar().showMessage(f"Side-by-side grid: {self.session.next_grid()}", 3000)

    def compare_with_prior(self) -> None:
        """The current study beside its newest prior among the open studies, pressed again the next older;
        with none open and a PACS set up, the newest prior is fetched from the PACS."""
        priors = self.session.priors()
        if not priors:
            self._ask_pacs_for_prior()
            return
        shown = self.session.on_screen[1] if len(self.session.on_screen) > 1 else None
        prior = priors[(priors.index(shown) + 1) % len(priors)] if shown in priors else priors[0]
        self.session.compare(prior)
        self.statusBar().showMessage(f"Compared with the prior of {prior.date}", 5000)

    def _ask_pacs_for_prior(self) -> None:
        from app.pacs.settings import settings_path

        current = self.session.current
        if current is None or not current.patient_id or not current.date or not settings_path().is_file():
            self.statusBar().showMessage("No earlier study of this patient (same Patient ID and modality, "
                                         "with a study date) is open", 8000)
            return
        if not hasattr(self, "prior_lookup"):
            from app.ui.prior_lookup import PriorLookup

            self.prior_lookup = PriorLookup(self)
            self.prior_lookup.finished.connect(self._on_prior_fetched)
        self.statusBar().showMessage("No prior is open: asking the PACS…")
        self.prior_lookup.start(current)

    def _on_prior_fetched(self, studies, message: str) -> None:
        self.session.add_studies(studies)
        priors = self.session.priors()
        if priors:
            self.session.compare(priors[0])
        self.statusBar().showMessage(message, 10000)

    def _set_show_patient_name(self, show: bool) -> None:
        self.settings.set_show_patient_name(show)
        self.study_view.set_show_patient_name(show)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        entries = self.settings.recent()
        if not entries:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for paths in entries:
            label = ", ".join(printable(p.name or str(p)) for p in paths[:3]) + ("…" if len(paths) > 3 else "")
            action = self.recent_menu.addAction(label)
            action.setToolTip("\n".join(map(str, paths)))
            action.triggered.connect(lambda _=False, chosen=paths: self.open_paths(chosen))

    def show_help(self) -> None:
        rows = "".join(f"<tr><td><b>{s.keys}</b></td><td>{s.text}</td></tr>" for s in SHORTCUTS)
        mouse = "".join(f"<tr><td><b>{k}</b></td><td>{t}</td></tr>" for k, t in MOUSE_HELP)
        QtWidgets.QMessageBox.information(
            self, "Keyboard and mouse",
            f"<table cellspacing=6>{mouse}<tr><td colspan=2><hr></td></tr>{rows}</table>")

    def show_about(self) -> None:
        from app import __version__

        QtWidgets.QMessageBox.about(self, "About RadLens",
                                    f"RadLens {__version__}<br>For research use; not a medical device.")
