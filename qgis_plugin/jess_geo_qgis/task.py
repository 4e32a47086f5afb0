"""The background run: a QgsTask around `jess-geo predict --json-progress`."""

from __future__ import annotations

from typing import Optional

from qgis.core import Qgis, QgsMessageLog, QgsProject, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from .protocol import Canceled, Failed, Outcome, ProgressEvent, Success, notices
from .request import PredictRequest
from .runner import run_predict
from .styling import add_result_layers

LOG_TAG = "jess-geo"


class SegmentTask(QgsTask):
    """Runs one prediction in a worker thread; adds the styled results in ``finished()``.

    No exception crosses threads: ``run()`` stores a Success/Failed/Canceled outcome and
    ``finished()`` (GUI thread) acts on it and emits ``outcomeReady``.
    """

    # Emitted from the worker thread with the stage message ("tile 3/12", ...).
    stageChanged = pyqtSignal(str)
    # Emitted on the GUI thread once the run is over, with the Outcome.
    outcomeReady = pyqtSignal(object)

    def __init__(self, executable: str, request: PredictRequest, message_bar=None, project=None):
        super().__init__(f"jess-geo: segment {request.scene_name}", QgsTask.CanCancel)
        self.executable = executable
        self.request = request
        self.message_bar = message_bar
        self.project = project
        self.outcome: Optional[Outcome] = None
        self.layers = []

    def run(self) -> bool:
        self.outcome = run_predict(
            self.executable,
            self.request,
            on_progress=self._on_progress,
            is_canceled=self.isCanceled,
            on_log=self._log,
        )
        return isinstance(self.outcome, Success)

    def _on_progress(self, event: ProgressEvent) -> None:
        if event.percent is not None:
            # Prediction and vectorizing each report 0-100; show them as one bar.
            share = {"predict": (0.0, 0.8), "vectorize": (80.0, 0.19)}.get(event.stage)
            if share is not None:
                self.setProgress(share[0] + share[1] * event.percent)
            elif event.stage == "done":
                self.setProgress(100.0)
        if event.message:
            self.stageChanged.emit(f"{event.stage}: {event.message}")

    def _log(self, line: str) -> None:
        QgsMessageLog.logMessage(line, LOG_TAG, Qgis.Info)

    def finished(self, result: bool) -> None:
        outcome = self.outcome if self.outcome is not None else Canceled()
        try:
            if isinstance(outcome, Success):
                project = self.project or QgsProject.instance()
                self.layers = add_result_layers(
                    project, self.request.scene_name, outcome.outputs, outcome.classes
                )
                main = [outcome.outputs.get(k) for k in ("classes", "vector")]
                written = ", ".join(p for p in main if p)
                self._push("jess-geo", f"Segmented {self.request.scene_name}: {written}", Qgis.Success)
                for notice in notices(outcome.events):  # e.g. the scene looks like a new camera
                    QgsMessageLog.logMessage(notice, LOG_TAG, Qgis.Warning)
                    self._push("jess-geo", notice, Qgis.Warning)
            elif isinstance(outcome, Failed):
                QgsMessageLog.logMessage(outcome.message, LOG_TAG, Qgis.Critical)
                self._push("jess-geo", outcome.message, Qgis.Critical)
            else:
                self._push("jess-geo", f"Segmenting {self.request.scene_name} was cancelled; no files were written.", Qgis.Info)
        except Exception as error:  # never let a traceback reach the user
            outcome = Failed(f"The results could not be added to the project: {error}")
            self.outcome = outcome
            self._push("jess-geo", outcome.message, Qgis.Critical)
        self.outcomeReady.emit(outcome)

    def _push(self, title: str, text: str, level) -> None:
        if self.message_bar is not None:
            self.message_bar.pushMessage(title, text, level, 0 if level == Qgis.Critical else 10)
