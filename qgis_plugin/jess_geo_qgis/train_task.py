"""The background training: a QgsTask around ``jess-geo train`` / ``adapt`` (see train_runner)."""

from __future__ import annotations

from typing import Optional

from qgis.core import Qgis, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from .protocol import Canceled, Failed
from .train_runner import TrainOutcome, run_train
from .training import EpochRow, Trained, TrainRequest, epoch_text

LOG_TAG = "jess-geo"


class TrainTask(QgsTask):
    """Trains in a worker thread; ``epochDone`` after each epoch, ``outcomeReady`` at the end.

    No exception crosses threads: ``run()`` stores a Trained/Failed/Canceled outcome and
    ``finished()`` (GUI thread) reports it and emits ``outcomeReady``.
    """

    # Emitted from the worker thread: the epoch's text and its validation accuracy (or -1).
    epochDone = pyqtSignal(str, float)
    # Emitted on the GUI thread once the run is over, with the outcome.
    outcomeReady = pyqtSignal(object)

    def __init__(self, executable: str, request: TrainRequest, message_bar=None, workspace_cleanup=None):
        verb = "adapt" if request.base_model else "train"
        super().__init__(f"jess-geo: {verb} {request.model_path}", QgsTask.CanCancel)
        self.executable = executable
        self.request = request
        self.message_bar = message_bar
        self.cleanup = workspace_cleanup
        self.outcome: Optional[TrainOutcome] = None

    def run(self) -> bool:
        self.outcome = run_train(self.executable, self.request, on_epoch=self._on_epoch,
                                 is_canceled=self.isCanceled, on_log=self._log)
        return isinstance(self.outcome, Trained)

    def _on_epoch(self, row: EpochRow) -> None:
        if self.request.epochs:
            self.setProgress(min(99.0, 100.0 * row.epoch / self.request.epochs))
        accuracy = row.val_accuracy if row.val_accuracy is not None else -1.0
        self.epochDone.emit(epoch_text(row, self.request.epochs), accuracy)

    def _log(self, line: str) -> None:
        QgsMessageLog.logMessage(line, LOG_TAG, Qgis.Info)

    def finished(self, result: bool) -> None:
        outcome = self.outcome if self.outcome is not None else Canceled()
        if self.cleanup is not None:
            self.cleanup()
        if isinstance(outcome, Trained):
            self._push(f"Model written: {outcome.model_path}", Qgis.Success)
        elif isinstance(outcome, Failed):
            QgsMessageLog.logMessage(outcome.message, LOG_TAG, Qgis.Critical)
            self._push(outcome.message, Qgis.Critical)
        else:
            self._push("Training was cancelled; no model file was written.", Qgis.Info)
        self.outcomeReady.emit(outcome)

    def _push(self, text: str, level) -> None:
        if self.message_bar is not None:
            self.message_bar.pushMessage("jess-geo", text, level, 0 if level == Qgis.Critical else 10)
