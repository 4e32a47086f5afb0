"""Ask the jess-geo executable short questions without blocking QGIS (QProcess)."""

from __future__ import annotations

from typing import Callable, List, Optional

from qgis.PyQt.QtCore import QObject, QProcess, QProcessEnvironment

from .runner import clean_environment

# callback(returncode or None when it could not start, stdout, stderr, start error text)
ProbeCallback = Callable[[Optional[int], str, str, str], None]


class Probe(QObject):
    """Runs one command at a time asynchronously; a new start() abandons the previous one."""

    def __init__(self, parent: Optional[QObject] = None):
        super().__init__(parent)
        self._process: Optional[QProcess] = None
        self._callback: Optional[ProbeCallback] = None

    def is_running(self) -> bool:
        return self._process is not None

    def start(self, command: List[str], callback: ProbeCallback) -> None:
        self.stop()
        process = QProcess(self)
        environment = QProcessEnvironment()
        for key, value in clean_environment().items():
            environment.insert(key, value)
        process.setProcessEnvironment(environment)
        process.finished.connect(lambda code, status, p=process: self._finished(p, code, status))
        process.errorOccurred.connect(lambda error, p=process: self._error(p, error))
        self._process = process
        self._callback = callback
        process.start(command[0], command[1:])

    def stop(self) -> None:
        process, self._process, self._callback = self._process, None, None
        if process is not None:
            process.blockSignals(True)
            if process.state() != QProcess.NotRunning:
                process.kill()
                process.waitForFinished(2000)
            process.deleteLater()

    def _take(self, process: QProcess) -> Optional[ProbeCallback]:
        if process is not self._process:
            return None
        callback, self._process, self._callback = self._callback, None, None
        process.deleteLater()
        return callback

    def _finished(self, process: QProcess, code: int, status) -> None:
        stdout = bytes(process.readAllStandardOutput()).decode("utf-8", "replace")
        stderr = bytes(process.readAllStandardError()).decode("utf-8", "replace")
        callback = self._take(process)
        if callback is not None:
            returncode = code if status == QProcess.NormalExit else -1
            callback(returncode, stdout, stderr, "")

    def _error(self, process: QProcess, error) -> None:
        if error != QProcess.FailedToStart:
            return  # crashes and timeouts also end in finished()
        text = process.errorString()
        callback = self._take(process)
        if callback is not None:
            callback(None, "", "", text)
