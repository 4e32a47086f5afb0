"""The "jess-geo environment" box every dialog shows: which executable, and whether it works."""

from __future__ import annotations

import os
from typing import Optional

from qgis.PyQt.QtCore import Qt, QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QWidget
from qgis.gui import QgsFileWidget

from . import settings
from .environment import INSTALL_HELP, EngineCheck, find_executable, interpret_version, missing_message
from .probe import Probe

ERROR_STYLE = "color: #b00020;"
OK_STYLE = "color: #1b5e20;"


def set_label(label: QLabel, text: str, style: str = "") -> None:
    """Show ``text`` in ``label`` in a style (ERROR_STYLE, OK_STYLE or plain)."""
    label.setText(text)
    label.setStyleSheet(style)


class EnginePanel(QGroupBox):
    """The executable field (stored in the settings), a Check button and the check's result.

    ``checked`` is emitted with an EngineCheck each time a check ends; ``engine`` holds the
    latest (None while a check runs).
    """

    checked = pyqtSignal(object)

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__("jess-geo environment", parent)
        self.engine: Optional[EngineCheck] = None
        self._probe = Probe(self)
        form = QFormLayout(self)
        self.executable_widget = QgsFileWidget()
        self.executable_widget.setObjectName("executableWidget")
        self.executable_widget.setStorageMode(QgsFileWidget.GetFile)
        self.executable_widget.lineEdit().setPlaceholderText(
            "the jess-geo executable of its own environment (or set JESS_GEO_EXE)")
        self.check_button = QPushButton("Check")
        self.check_button.setObjectName("checkButton")
        row = QHBoxLayout()
        row.addWidget(self.executable_widget, 1)
        row.addWidget(self.check_button)
        form.addRow("Executable", row)
        self.label = QLabel("Checking jess-geo...")
        self.label.setObjectName("environmentStatus")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        form.addRow(self.label)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(400)
        self.executable_widget.blockSignals(True)
        self.executable_widget.setFilePath(settings.configured_executable())
        self.executable_widget.blockSignals(False)
        self.check_button.clicked.connect(lambda: self.refresh(force=True))
        self.executable_widget.fileChanged.connect(lambda _path: self._timer.start())
        self._timer.timeout.connect(self._edited)

    def executable(self) -> str:
        """The executable to run: the field, else $JESS_GEO_EXE, else PATH ('' when none)."""
        return find_executable(self.executable_widget.filePath().strip())

    def is_checking(self) -> bool:
        return self._probe.is_running()

    def _edited(self) -> None:
        settings.set_configured_executable(self.executable_widget.filePath().strip())
        self.refresh()

    def refresh(self, force: bool = False) -> None:
        """Check the executable (asynchronously unless a previous check is cached)."""
        path = self.executable()
        self.engine = None
        cached = None if force else settings.cached_check(path)
        if cached is not None:
            self._done(cached)
            return
        if not path or not os.path.isfile(path):
            self._done(EngineCheck(False, path, message=missing_message(path)))
            return
        set_label(self.label, f"Checking {path} ...")
        self._probe.start([path, "--version"], lambda *answer: self._answered(path, *answer))

    def _answered(self, path: str, code, out: str, err: str, start_error: str) -> None:
        if code is None:
            check = EngineCheck(False, path, message=f"jess-geo at {path} cannot be started ({start_error}). {INSTALL_HELP}")
        else:
            check = interpret_version(path, code, out, err)
        settings.store_check(check)
        self._done(check)

    def _done(self, check: EngineCheck) -> None:
        self.engine = check
        if check.ok:
            set_label(self.label, f"jess-geo {check.version} at {check.executable}", OK_STYLE)
        else:
            set_label(self.label, check.message, ERROR_STYLE)
        self.checked.emit(check)

    def stop(self) -> None:
        self._probe.stop()
