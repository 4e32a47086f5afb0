"""The Segment dialog's "Retrain with corrections" box: fine-tune on the edited polygons, predict again.

After a run, the user edits the polygons layer it added (``class_id`` of wrong polygons, missing
polygons drawn, optionally ``verified`` ticked). The button writes those polygons as labels
(:func:`corrections_request`), fine-tunes the dialog's model with ``jess-geo train --init`` in a
:class:`TrainTask`, then makes the new model the dialog's model and segments the same input
again into new files named after it (the first prediction stays for comparison).
"""

from __future__ import annotations

import os
from typing import Optional

from qgis.core import QgsApplication, QgsProject, QgsVectorLayer
from qgis.PyQt.QtWidgets import QCheckBox, QGroupBox, QHBoxLayout, QPushButton, QSpinBox

from .corrections import corrections_request
from .engine_panel import ERROR_STYLE, OK_STYLE, set_label
from .protocol import Success
from .segment_widgets import info_label
from .train_task import TrainTask
from .training import Trained, classes_from_info


def edited_layer(vector: str, layer_name: str) -> QgsVectorLayer:
    """The project's layer showing ``vector`` (with its pending edits), else the file's layer."""
    for layer in QgsProject.instance().mapLayers().values():
        source = layer.source().split("|")[0]
        if isinstance(layer, QgsVectorLayer) and os.path.abspath(source) == os.path.abspath(vector):
            return layer
    return QgsVectorLayer(f"{vector}|layername={layer_name}", layer_name, "ogr")


def renamed(path: str, model: str) -> str:
    """``scene_classes.tif`` + ``m_corrected.pt`` -> ``scene_classes_m_corrected.tif``."""
    stem, ext = os.path.splitext(path)
    return f"{stem}_{os.path.splitext(os.path.basename(model))[0]}{ext}"


class CorrectionPanel(QGroupBox):
    """Retrain the dialog's model on the corrected polygons of its last run, then predict again."""

    def __init__(self, dialog):
        super().__init__("Correct and retrain")
        self.dialog = dialog
        self.task: Optional[TrainTask] = None
        self.last_outcome = None
        layout = QHBoxLayout(self)
        self.verified_check = QCheckBox("Only polygons with verified = true")
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 100)
        self.epochs_spin.setValue(2)
        self.epochs_spin.setPrefix("epochs ")
        self.retrain_button = QPushButton("Retrain with corrections")
        self.retrain_button.setObjectName("retrainButton")
        self.retrain_button.setToolTip("Edit class_id of wrong polygons (or draw missing ones), then fine-tune "
                                       "the model on them and segment again")
        self.status_label = info_label("retrainStatus")
        for widget in (self.verified_check, self.epochs_spin, self.retrain_button, self.status_label):
            layout.addWidget(widget)
        self.retrain_button.clicked.connect(self.start_retrain)
        self.update_state()

    def update_state(self) -> None:
        outcome = self.dialog.last_outcome
        ready = isinstance(outcome, Success) and bool(outcome.outputs.get("vector")) and self.task is None
        self.retrain_button.setEnabled(ready and self.dialog.task is None)

    def start_retrain(self) -> Optional[TrainTask]:
        """Start the fine-tuning task (None, with the reason shown, when it cannot start)."""
        outcome, dialog = self.dialog.last_outcome, self.dialog
        try:
            if not isinstance(outcome, Success) or not outcome.outputs.get("vector"):
                raise ValueError("Segment with polygons first; then correct the polygons layer.")
            if not dialog.model_path():
                raise ValueError("Retraining needs the model as a file: choose it under Model file.")
            layer = edited_layer(outcome.outputs["vector"], outcome.outputs.get("vector_layer") or "classes")
            request = corrections_request(
                layer, dialog.form().scene, dialog.model_path(), classes_from_info(dialog.model_info),
                verified_only=self.verified_check.isChecked(), epochs=self.epochs_spin.value(),
                device=dialog.device_combo.currentText())
        except ValueError as error:
            set_label(self.status_label, str(error), ERROR_STYLE)
            return None
        task = TrainTask(dialog.engine.executable, request, dialog.iface.messageBar())
        task.epochDone.connect(lambda text, _accuracy: set_label(self.status_label, text))
        task.outcomeReady.connect(self._retrained)
        self.task, self.last_outcome = task, None
        set_label(self.status_label, f"Fine-tuning {os.path.basename(request.init_model)} on the corrections ...")
        self.update_state()
        QgsApplication.taskManager().addTask(task)
        return task

    def _retrained(self, outcome) -> None:
        self.task, self.last_outcome = None, outcome
        self.update_state()
        if not isinstance(outcome, Trained):
            set_label(self.status_label, getattr(outcome, "message", "Cancelled; no model file was written."),
                      ERROR_STYLE)
            return
        dialog = self.dialog
        previous = dialog.last_outcome.outputs
        dialog.model_widget.blockSignals(True)
        dialog.model_widget.setFilePath(outcome.model_path)
        dialog.model_widget.blockSignals(False)
        dialog.classes_widget.setFilePath(renamed(previous["classes"], outcome.model_path))
        dialog.vector_widget.setFilePath(renamed(previous["vector"], outcome.model_path))
        set_label(self.status_label, f"Retrained: {os.path.basename(outcome.model_path)}; segmenting again.", OK_STYLE)
        dialog.start_run()
