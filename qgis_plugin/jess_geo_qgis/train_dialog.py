"""The "Train a model" dialog: raster layers + a polygon label layer -> a new jess-geo model.

The labels are exported on the GUI thread to a private GeoPackage, then a TrainTask runs
``jess-geo train`` in the background with epoch progress and Cancel.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import List, Optional

from qgis.core import QgsApplication, QgsFieldProxyModel, QgsMapLayerProxyModel, QgsProject, QgsRasterLayer
from qgis.gui import QgsFieldComboBox, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .engine_panel import ERROR_STYLE, OK_STYLE, EnginePanel, set_label
from .environment import EngineError, info_command, interpret_info
from .labels_export import export_labels
from .probe import Probe
from .protocol import Canceled, Failed
from .segment_widgets import build_buttons, file_widget, info_label
from .sources import raster_file
from .train_task import TrainTask
from .training import ACCELERATORS, Trained, TrainRequest, class_lines, classes_from_info, parse_class_lines

RECIPE_FILTER = "Training recipes (*.yaml *.yml);;All files (*)"
MODEL_FILTER = "jess-geo model files (*.pt)"
SOURCE_MODEL_FILTER = "jess-geo models (*.pt *.onnx);;All files (*)"


class TrainDialog(QDialog):
    """Collects a TrainRequest from project layers and runs a TrainTask."""

    def __init__(self, iface, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.iface = iface
        self.setObjectName("JessGeoTrainDialog")
        self.setWindowTitle("Train a jess-geo model")
        self.setMinimumWidth(620)
        self.task: Optional[TrainTask] = None
        self.last_outcome = None
        self.accuracies: List[float] = []
        self._labels_folder = ""
        self._class_probe = Probe(self)
        layout = QVBoxLayout(self)
        self.engine_panel = EnginePanel(self)
        layout.addWidget(self.engine_panel)
        layout.addWidget(self._data_box())
        layout.addWidget(self._recipe_box())
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("trainProgress")
        layout.addWidget(self.progress_bar)
        self.status_label = info_label("trainStatus")
        self.accuracy_label = info_label("accuracyInfo")
        self.figures_label = info_label("figuresInfo")
        self.figures_label.setOpenExternalLinks(True)
        self.figures_label.setTextInteractionFlags(Qt.TextBrowserInteraction)
        for label in (self.status_label, self.accuracy_label, self.figures_label):
            layout.addWidget(label)
        layout.addWidget(build_buttons(self))
        self.run_button.clicked.connect(self.start_run)
        self.cancel_run_button.clicked.connect(self.cancel_run)
        self.close_button.clicked.connect(self.close)
        self.engine_panel.checked.connect(lambda _check: self._update_buttons())
        self.refresh_layers()

    @property
    def engine(self):
        return self.engine_panel.engine

    def _data_box(self) -> QGroupBox:
        box = QGroupBox("Images and labels")
        form = QFormLayout(box)
        self.raster_list = QListWidget()
        self.raster_list.setObjectName("rasterList")
        form.addRow("Raster layers", self.raster_list)
        self.labels_combo = QgsMapLayerComboBox()
        self.labels_combo.setObjectName("labelsCombo")
        self.labels_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        form.addRow("Label polygons", self.labels_combo)
        self.field_combo = QgsFieldComboBox()
        self.field_combo.setObjectName("classField")
        self.field_combo.setFilters(QgsFieldProxyModel.Numeric | QgsFieldProxyModel.String)
        form.addRow("Class field", self.field_combo)
        self.selected_check = QCheckBox("Selected polygons only")
        self.selected_check.setObjectName("selectedOnly")
        form.addRow(self.selected_check)
        self.verified_combo = QgsFieldComboBox()
        self.verified_combo.setObjectName("verifiedField")
        self.verified_combo.setAllowEmptyFieldName(True)
        self.verified_combo.setToolTip("Only polygons whose value here is true/1/yes are used (empty: all)")
        form.addRow("Only polygons marked in", self.verified_combo)
        self.labels_combo.layerChanged.connect(self._labels_changed)
        self._labels_changed(self.labels_combo.currentLayer())
        self.classes_edit = QPlainTextEdit()
        self.classes_edit.setObjectName("classTable")
        self.classes_edit.setPlaceholderText("one class a line: ID NAME #rrggbb, e.g.\n0 bare soil #c9a87c\n1 moss #3f7a2e")
        self.classes_edit.setMaximumHeight(110)
        form.addRow("Class table", self.classes_edit)
        self.classes_model_button = QPushButton("Take the classes of a model file...")
        self.classes_model_button.setObjectName("classesFromModel")
        self.classes_model_button.clicked.connect(self._choose_class_model)
        form.addRow(self.classes_model_button)
        return box

    def _recipe_box(self) -> QGroupBox:
        box = QGroupBox("Training")
        form = QFormLayout(box)
        self.recipe_widget = file_widget("recipeWidget", RECIPE_FILTER, save=False)
        self.recipe_widget.lineEdit().setPlaceholderText("the engine's defaults (or a recipe from configs/)")
        form.addRow("Recipe", self.recipe_widget)
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setObjectName("epochs")
        self.epochs_spin.setRange(0, 100000)
        self.epochs_spin.setSpecialValueText("the recipe's")
        form.addRow("Epochs", self.epochs_spin)
        self.minutes_spin = QDoubleSpinBox()
        self.minutes_spin.setObjectName("maxMinutes")
        self.minutes_spin.setRange(0.0, 1e6)
        self.minutes_spin.setSpecialValueText("no limit")
        form.addRow("Stop after minutes", self.minutes_spin)
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("trainDevice")
        self.device_combo.addItems(list(ACCELERATORS))
        form.addRow("Device", self.device_combo)
        self.model_widget = file_widget("outputModel", MODEL_FILTER, save=True)
        form.addRow("Model file", self.model_widget)
        return box

    # ------------------------------------------------------------------ layers
    def refresh_layers(self) -> None:
        """List the project's file-backed raster layers, each with a tick box."""
        ticked = set(self.raster_paths())
        self.raster_list.clear()
        for layer in QgsProject.instance().mapLayers().values():
            if not isinstance(layer, QgsRasterLayer):
                continue
            path, problem = raster_file(layer)
            if problem:
                continue
            item = QListWidgetItem(f"{layer.name()} ({path})")
            item.setData(Qt.UserRole, path)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if path in ticked else Qt.Unchecked)
            self.raster_list.addItem(item)

    def set_rasters(self, paths) -> None:
        """Tick the listed raster files (and untick the others)."""
        for row in range(self.raster_list.count()):
            item = self.raster_list.item(row)
            item.setCheckState(Qt.Checked if item.data(Qt.UserRole) in paths else Qt.Unchecked)

    def raster_paths(self) -> List[str]:
        items = [self.raster_list.item(row) for row in range(self.raster_list.count())]
        return [item.data(Qt.UserRole) for item in items if item.checkState() == Qt.Checked]

    def _labels_changed(self, layer) -> None:
        self.field_combo.setLayer(layer)
        self.verified_combo.setLayer(layer)
        self.verified_combo.setField("")

    # ----------------------------------------------------------------- classes
    def _choose_class_model(self) -> None:
        from qgis.PyQt.QtWidgets import QFileDialog

        path, _filter = QFileDialog.getOpenFileName(self, "Model whose classes to use", "", SOURCE_MODEL_FILTER)
        if path:
            self.classes_from_model(path)

    def classes_from_model(self, path: str) -> None:
        """Fill the class table from a model file's metadata (`jess-geo info --json`)."""
        if self.engine is None or not self.engine.ok:
            set_label(self.status_label, "Check the jess-geo executable first.", ERROR_STYLE)
            return
        set_label(self.status_label, f"Reading the classes of {os.path.basename(path)} ...")
        self._class_probe.start(info_command(self.engine.executable, path), self._classes_read)

    def _classes_read(self, code, out: str, err: str, start_error: str) -> None:
        try:
            if code is None:
                raise EngineError(f"Could not start jess-geo ({start_error}).")
            classes = classes_from_info(interpret_info(code, out, err))
        except EngineError as error:
            set_label(self.status_label, str(error), ERROR_STYLE)
            return
        self.classes_edit.setPlainText(class_lines(classes))
        set_label(self.status_label, f"{len(classes)} classes taken from the model.")

    # --------------------------------------------------------------------- run
    def _export_labels(self, classes) -> str:
        layer = self.labels_combo.currentLayer()
        self._labels_folder = tempfile.mkdtemp(prefix="jess-geo-labels-")
        path = os.path.join(self._labels_folder, "labels.gpkg")
        count = export_labels(layer, self.field_combo.currentField(), path, classes,
                              selected_only=self.selected_check.isChecked(),
                              only_field=self.verified_combo.currentField())
        set_label(self.status_label, f"{count} labelled polygons exported; starting jess-geo ...")
        return path

    def request(self) -> TrainRequest:
        """The TrainRequest the dialog describes (raises ValueError with a sentence)."""
        if self.labels_combo.currentLayer() is None:
            raise ValueError("Choose a polygon layer of labels.")
        if not self.field_combo.currentField():
            raise ValueError("Choose the field that holds each polygon's class.")
        classes = parse_class_lines(self.classes_edit.toPlainText())
        return TrainRequest(
            model_path=self.model_widget.filePath().strip(), images=self.raster_paths(),
            labels_path=self._export_labels(classes), classes=classes,
            recipe=self.recipe_widget.filePath().strip(), epochs=self.epochs_spin.value() or None,
            max_minutes=self.minutes_spin.value() or None, device=self.device_combo.currentText(),
        )

    def start_run(self) -> Optional[TrainTask]:
        """Start training; returns the task (None when the form is refused)."""
        if self.task is not None:
            return None
        if self.engine is None or not self.engine.ok:
            set_label(self.status_label, self.engine.message if self.engine else "jess-geo has not been checked yet.",
                      ERROR_STYLE)
            return None
        try:
            request = self.request()
        except ValueError as error:
            self._drop_labels()
            set_label(self.status_label, str(error), ERROR_STYLE)
            return None
        task = TrainTask(self.engine.executable, request, self.iface.messageBar() if self.iface else None,
                         workspace_cleanup=self._drop_labels)
        task.epochDone.connect(self._epoch_done)
        task.outcomeReady.connect(self._run_over)
        self.task, self.last_outcome, self.accuracies = task, None, []
        self.progress_bar.setValue(0)
        for label in (self.accuracy_label, self.figures_label):
            label.setText("")
        self._update_buttons()
        QgsApplication.taskManager().addTask(task)
        return task

    def _epoch_done(self, text: str, accuracy: float) -> None:
        if accuracy >= 0:
            self.accuracies.append(accuracy)
        if self.task is not None and self.task.request.epochs:
            self.progress_bar.setValue(int(round(100 * len(self.accuracies) / self.task.request.epochs)))
        set_label(self.accuracy_label, text)

    def cancel_run(self) -> None:
        if self.task is not None:
            set_label(self.status_label, "Cancelling ...")
            self.task.cancel()

    def _run_over(self, outcome) -> None:
        self.task = None
        self.last_outcome = outcome
        if isinstance(outcome, Trained):
            self.progress_bar.setValue(100)
            accuracy = outcome.metrics.get("val_accuracy")
            best = f"; best validation accuracy {100 * accuracy:.1f} %" if isinstance(accuracy, (int, float)) else ""
            set_label(self.status_label, f"Model written: {outcome.model_path}{best}", OK_STYLE)
            links = " ".join(f'<a href="file://{p}">{os.path.basename(p)}</a>' for p in outcome.figures)
            self.figures_label.setText(f"Figures: {links}" if links else "")
        elif isinstance(outcome, Failed):
            set_label(self.status_label, outcome.message, ERROR_STYLE)
        elif isinstance(outcome, Canceled):
            self.progress_bar.setValue(0)
            set_label(self.status_label, "Cancelled; no model file was written.")
        self._update_buttons()

    def _drop_labels(self) -> None:
        if self._labels_folder:
            shutil.rmtree(self._labels_folder, ignore_errors=True)
            self._labels_folder = ""

    def _update_buttons(self) -> None:
        ready = self.engine is not None and self.engine.ok
        self.run_button.setEnabled(ready and self.task is None)
        self.cancel_run_button.setEnabled(self.task is not None)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh_layers()
        if self.engine is None and not self.engine_panel.is_checking():
            self.engine_panel.refresh()

    def closeEvent(self, event) -> None:
        self.engine_panel.stop()
        self._class_probe.stop()
        super().closeEvent(event)
