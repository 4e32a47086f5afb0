"""The "Segment with jess-geo" dialog: choose a raster, a model and outputs, then run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from qgis.core import Qgis, QgsApplication, QgsMapLayerProxyModel, QgsProject
from qgis.gui import QgsDoubleSpinBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from . import settings
from .environment import (
    EngineCheck,
    INSTALL_HELP,
    EngineError,
    find_executable,
    info_command,
    interpret_info,
    interpret_version,
    missing_message,
    model_defaults,
)
from .probe import Probe
from .runner import DEVICES, Canceled, Failed, PredictRequest, Success
from .sources import file_path_problem, raster_file
from .task import SegmentTask

MODEL_FILTER = "jess-geo model files (*.pt *.pth *.ckpt *.jgm);;All files (*)"
RASTER_FILTER = "Rasters (*.tif *.tiff *.vrt *.img *.jp2 *.png *.jpg *.jpeg);;All files (*)"
ERROR_STYLE = "color: #b00020;"
OK_STYLE = "color: #1b5e20;"


class SegmentDialog(QDialog):
    """Collects a PredictRequest, checks jess-geo, and runs a SegmentTask with progress."""

    def __init__(self, iface, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.iface = iface
        self.setObjectName("JessGeoSegmentDialog")
        self.setWindowTitle("Segment with jess-geo")
        self.setMinimumWidth(660)
        self.engine: Optional[EngineCheck] = None
        self.model_error = ""
        self.task: Optional[SegmentTask] = None
        self.last_outcome = None
        self._auto_outputs = {}
        self._reported = set()
        self._version_probe = Probe(self)
        self._info_probe = Probe(self)
        self._build()
        self._connect()
        self._load_settings()
        self._input_changed()

    # ----------------------------------------------------------------- layout
    def _build(self) -> None:
        layout = QVBoxLayout(self)

        engine_box = QGroupBox("jess-geo environment")
        engine_form = QFormLayout(engine_box)
        self.executable_widget = QgsFileWidget()
        self.executable_widget.setObjectName("executableWidget")
        self.executable_widget.setStorageMode(QgsFileWidget.GetFile)
        self.executable_widget.lineEdit().setPlaceholderText("found on PATH (or set the jess-geo executable)")
        self.check_button = QPushButton("Check")
        self.check_button.setObjectName("checkButton")
        row = QHBoxLayout()
        row.addWidget(self.executable_widget, 1)
        row.addWidget(self.check_button)
        engine_form.addRow("Executable", row)
        self.environment_label = QLabel("Checking jess-geo...")
        self.environment_label.setObjectName("environmentStatus")
        self.environment_label.setWordWrap(True)
        self.environment_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        engine_form.addRow(self.environment_label)
        layout.addWidget(engine_box)

        input_box = QGroupBox("Input and model")
        input_form = QFormLayout(input_box)
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setObjectName("inputLayerCombo")
        self.layer_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.layer_combo.setShowCrs(True)
        self.browse_button = QToolButton()
        self.browse_button.setObjectName("browseInputButton")
        self.browse_button.setText("…")
        self.browse_button.setToolTip("Segment a raster file that is not in the project")
        row = QHBoxLayout()
        row.addWidget(self.layer_combo, 1)
        row.addWidget(self.browse_button)
        input_form.addRow("Input raster", row)
        self.model_widget = QgsFileWidget()
        self.model_widget.setObjectName("modelWidget")
        self.model_widget.setStorageMode(QgsFileWidget.GetFile)
        self.model_widget.setFilter(MODEL_FILTER)
        self.model_widget.lineEdit().setPlaceholderText("demo model shipped with jess-geo")
        input_form.addRow("Model file", self.model_widget)
        self.model_label = QLabel("")
        self.model_label.setObjectName("modelInfo")
        self.model_label.setWordWrap(True)
        input_form.addRow(self.model_label)
        layout.addWidget(input_box)

        output_box = QGroupBox("Outputs")
        output_form = QFormLayout(output_box)
        self.classes_widget = self._save_widget("classesOutput", "GeoTIFF (*.tif *.tiff)")
        output_form.addRow("Class raster", self.classes_widget)
        self.vector_check = QCheckBox("Polygons")
        self.vector_check.setObjectName("vectorCheck")
        self.vector_check.setChecked(True)
        self.vector_widget = self._save_widget("vectorOutput", "GeoPackage (*.gpkg)")
        output_form.addRow(self.vector_check, self.vector_widget)
        self.probabilities_check = QCheckBox("Probabilities")
        self.probabilities_check.setObjectName("probabilitiesCheck")
        self.probabilities_widget = self._save_widget("probabilitiesOutput", "GeoTIFF (*.tif *.tiff)")
        output_form.addRow(self.probabilities_check, self.probabilities_widget)
        self.energy_check = QCheckBox("Energy")
        self.energy_check.setObjectName("energyCheck")
        self.energy_check.setToolTip("Per-pixel free energy: high where the scene is unlike the training data")
        self.energy_widget = self._save_widget("energyOutput", "GeoTIFF (*.tif *.tiff)")
        output_form.addRow(self.energy_check, self.energy_widget)
        self.overwrite_check = QCheckBox("Replace existing files")
        self.overwrite_check.setObjectName("overwriteCheck")
        output_form.addRow(self.overwrite_check)
        layout.addWidget(output_box)

        options_box = QGroupBox("Options")
        options_form = QFormLayout(options_box)
        self.tile_spin = QSpinBox()
        self.tile_spin.setObjectName("tileSize")
        self.tile_spin.setRange(0, 16384)
        self.tile_spin.setSingleStep(32)
        self.tile_spin.setSpecialValueText("model default")
        self.tile_spin.setSuffix(" px")
        options_form.addRow("Tile size", self.tile_spin)
        self.overlap_spin = QSpinBox()
        self.overlap_spin.setObjectName("overlap")
        self.overlap_spin.setRange(-1, 8192)
        self.overlap_spin.setSingleStep(8)
        self.overlap_spin.setSpecialValueText("model default")
        self.overlap_spin.setValue(-1)
        self.overlap_spin.setSuffix(" px")
        options_form.addRow("Overlap", self.overlap_spin)
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("device")
        self.device_combo.addItems(list(DEVICES))
        options_form.addRow("Device", self.device_combo)
        self.min_area_spin = QgsDoubleSpinBox()
        self.min_area_spin.setObjectName("minArea")
        self.min_area_spin.setRange(0.0, 1e12)
        self.min_area_spin.setDecimals(2)
        self.min_area_spin.setSpecialValueText("keep all polygons")
        self.min_area_spin.setToolTip("Drop polygons smaller than this (m², or px² for photos)")
        options_form.addRow("Minimum area", self.min_area_spin)
        self.simplify_spin = QgsDoubleSpinBox()
        self.simplify_spin.setObjectName("simplify")
        self.simplify_spin.setRange(0.0, 1e6)
        self.simplify_spin.setDecimals(3)
        self.simplify_spin.setSpecialValueText("no simplification")
        self.simplify_spin.setToolTip("Topology-preserving simplification tolerance in map units (pixels for photos)")
        options_form.addRow("Simplify", self.simplify_spin)
        layout.addWidget(options_box)

        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("progressBar")
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        layout.addWidget(self.progress_bar)
        self.status_label = QLabel("")
        self.status_label.setObjectName("runStatus")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.status_label)

        self.buttons = QDialogButtonBox()
        self.run_button = self.buttons.addButton("Run", QDialogButtonBox.AcceptRole)
        self.run_button.setObjectName("runButton")
        self.cancel_run_button = self.buttons.addButton("Cancel run", QDialogButtonBox.ActionRole)
        self.cancel_run_button.setObjectName("cancelRunButton")
        self.cancel_run_button.setEnabled(False)
        self.close_button = self.buttons.addButton(QDialogButtonBox.Close)
        layout.addWidget(self.buttons)

        self._engine_timer = QTimer(self)
        self._engine_timer.setSingleShot(True)
        self._engine_timer.setInterval(400)
        self._model_timer = QTimer(self)
        self._model_timer.setSingleShot(True)
        self._model_timer.setInterval(400)

    def _save_widget(self, name: str, file_filter: str) -> QgsFileWidget:
        widget = QgsFileWidget()
        widget.setObjectName(name)
        widget.setStorageMode(QgsFileWidget.SaveFile)
        widget.setFilter(file_filter)
        widget.setConfirmOverwrite(False)
        return widget

    def _connect(self) -> None:
        self.check_button.clicked.connect(lambda: self.refresh_engine(force=True))
        self.executable_widget.fileChanged.connect(lambda _path: self._engine_timer.start())
        self._engine_timer.timeout.connect(self._executable_edited)
        self.model_widget.fileChanged.connect(lambda _path: self._model_timer.start())
        self._model_timer.timeout.connect(self._model_edited)
        self.layer_combo.layerChanged.connect(lambda _layer: self._input_changed())
        self.layer_combo.currentIndexChanged.connect(lambda _index: self._input_changed())
        self.browse_button.clicked.connect(self._browse_input)
        for check, widget in (
            (self.vector_check, self.vector_widget),
            (self.probabilities_check, self.probabilities_widget),
            (self.energy_check, self.energy_widget),
        ):
            check.toggled.connect(widget.setEnabled)
            check.toggled.connect(lambda _on: self._fill_outputs())
            widget.setEnabled(check.isChecked())
        self.run_button.clicked.connect(self.start_run)
        self.cancel_run_button.clicked.connect(self.cancel_run)
        self.close_button.clicked.connect(self.close)

    def _load_settings(self) -> None:
        self.executable_widget.blockSignals(True)
        self.executable_widget.setFilePath(settings.configured_executable())
        self.executable_widget.blockSignals(False)
        self.model_widget.blockSignals(True)
        self.model_widget.setFilePath(settings.remembered_model())
        self.model_widget.blockSignals(False)
        device = settings.remembered_device()
        if device in DEVICES:
            self.device_combo.setCurrentText(device)

    # ------------------------------------------------------------ environment
    def executable(self) -> str:
        return find_executable(self.executable_widget.filePath().strip())

    def _executable_edited(self) -> None:
        settings.set_configured_executable(self.executable_widget.filePath().strip())
        self.refresh_engine()

    def refresh_engine(self, force: bool = False) -> None:
        """Check the executable (asynchronously unless a previous check is cached)."""
        path = self.executable()
        self.engine = None
        self._update_run_button()
        cached = None if force else settings.cached_check(path)
        if cached is not None:
            self._engine_checked(cached)
            return
        if not path or not os.path.isfile(path):
            self._engine_checked(EngineCheck(False, path, message=missing_message(path)))
            return
        self._set_label(self.environment_label, f"Checking {path} ...", "")
        self._version_probe.start(
            [path, "--version"],
            lambda code, out, err, start_error: self._version_answered(path, code, out, err, start_error),
        )

    def _version_answered(self, path: str, code, out: str, err: str, start_error: str) -> None:
        if code is None:
            check = EngineCheck(
                False, path, message=f"jess-geo at {path} cannot be started ({start_error}). {INSTALL_HELP}"
            )
        else:
            check = interpret_version(path, code, out, err)
        settings.store_check(check)
        self._engine_checked(check)

    def _engine_checked(self, check: EngineCheck) -> None:
        self.engine = check
        if check.ok:
            self._set_label(self.environment_label, f"jess-geo {check.version} at {check.executable}", OK_STYLE)
            self.refresh_model()
        else:
            self._set_label(self.environment_label, check.message, ERROR_STYLE)
            self._report(check.message, Qgis.Warning)
        self._update_run_button()

    # ------------------------------------------------------------------ model
    def model_path(self) -> str:
        return self.model_widget.filePath().strip()

    def _model_edited(self) -> None:
        settings.remember_model(self.model_path())
        self.refresh_model()

    def refresh_model(self) -> None:
        """Read the model's metadata with `jess-geo info --json` and take its defaults."""
        if self.engine is None or not self.engine.ok:
            return
        model = self.model_path()
        if model and not os.path.isfile(model):
            self._model_read(error=f"The model file {model} does not exist; choose a jess-geo model file or leave it empty for the demo model.")
            return
        self.model_error = ""
        self._set_label(self.model_label, "Reading the model file...", "")
        self._info_probe.start(info_command(self.engine.executable, model), self._info_answered)

    def _info_answered(self, code, out: str, err: str, start_error: str) -> None:
        if code is None:
            self._model_read(error=f"Could not start jess-geo ({start_error}).")
            return
        try:
            info = interpret_info(code, out, err)
        except EngineError as error:
            self._model_read(error=str(error))
            return
        self._model_read(info=info)

    def _model_read(self, info=None, error: str = "") -> None:
        self.model_error = error
        if error:
            self._set_label(self.model_label, error, ERROR_STYLE)
            self._update_run_button()
            return
        defaults = model_defaults(info or {})
        if defaults.tile_size:
            self.tile_spin.setValue(defaults.tile_size)
        if defaults.overlap is not None:
            self.overlap_spin.setValue(defaults.overlap)
        names = ", ".join(defaults.class_names or [])
        parts = [f"{len(defaults.class_names or [])} classes: {names}" if names else "classes unknown"]
        if defaults.bands:
            parts.append("bands " + ", ".join(str(b) for b in defaults.bands))
        if defaults.tile_size:
            parts.append(f"tile {defaults.tile_size} px, overlap {defaults.overlap} px")
        source = self.model_path() or "demo model"
        self._set_label(self.model_label, f"{Path(source).name}: " + "; ".join(parts), "")
        self._update_run_button()

    # ------------------------------------------------------------ input/output
    def _browse_input(self) -> None:
        path, _filter = QFileDialog.getOpenFileName(self, "Raster to segment", "", RASTER_FILTER)
        if path:
            self.set_input_file(path)

    def set_input_file(self, path: str) -> None:
        """Use a raster file that is not a project layer as the input."""
        items = list(self.layer_combo.additionalItems())
        if path not in items:
            items.append(path)
            self.layer_combo.setAdditionalItems(items)
        self.layer_combo.setCurrentIndex(self.layer_combo.findText(path))
        self._input_changed()

    def input_path(self):
        """(path, problem): the file to segment, or '' and the sentence explaining why not."""
        layer = self.layer_combo.currentLayer()
        if layer is not None:
            return raster_file(layer)
        text = self.layer_combo.currentText().strip()
        problem = file_path_problem(text)
        return ("", problem) if problem else (text, "")

    def _input_changed(self) -> None:
        self._fill_outputs()

    def _fill_outputs(self) -> None:
        """Propose outputs beside the input, unless the user typed their own."""
        path, _problem = self.input_path()
        if not path:
            return
        base = Path(path).with_name(Path(path).stem)
        proposals = {
            self.classes_widget: f"{base}_classes.tif",
            self.vector_widget: f"{base}_classes.gpkg",
            self.probabilities_widget: f"{base}_probabilities.tif",
            self.energy_widget: f"{base}_energy.tif",
        }
        for widget, proposal in proposals.items():
            current = widget.filePath().strip()
            if not current or current == self._auto_outputs.get(widget.objectName()):
                widget.setFilePath(proposal)
                self._auto_outputs[widget.objectName()] = proposal

    def request(self) -> PredictRequest:
        """The PredictRequest described by the dialog (raises ValueError with a sentence)."""
        scene, problem = self.input_path()
        if problem:
            raise ValueError(problem)
        classes_path = self.classes_widget.filePath().strip()
        if not classes_path:
            raise ValueError("Choose where to write the class raster.")
        outputs = [classes_path]
        vector_path = self.vector_widget.filePath().strip() if self.vector_check.isChecked() else ""
        if self.vector_check.isChecked():
            if not vector_path:
                raise ValueError("Choose where to write the polygons, or untick Polygons.")
            outputs.append(vector_path)
        extras = []
        for check, widget, label in (
            (self.probabilities_check, self.probabilities_widget, "probabilities"),
            (self.energy_check, self.energy_widget, "energy"),
        ):
            value = widget.filePath().strip() if check.isChecked() else ""
            if check.isChecked() and not value:
                raise ValueError(f"Choose where to write the {label} raster, or untick it.")
            extras.append(value)
            if value:
                outputs.append(value)
        if len(set(os.path.abspath(p) for p in outputs)) != len(outputs):
            raise ValueError("Two outputs have the same file name; give each output its own file.")
        if os.path.abspath(scene) in {os.path.abspath(p) for p in outputs}:
            raise ValueError("An output would replace the input raster; choose another output name.")
        if not self.overwrite_check.isChecked():
            existing = [p for p in outputs if os.path.exists(p)]
            if existing:
                raise ValueError(
                    f"{existing[0]} already exists; tick 'Replace existing files' or choose another name."
                )
        return PredictRequest(
            scene=scene,
            model=self.model_path(),
            classes_path=classes_path,
            vector=self.vector_check.isChecked(),
            vector_path=vector_path,
            probabilities_path=extras[0],
            energy_path=extras[1],
            tile_size=self.tile_spin.value() or None,
            overlap=self.overlap_spin.value() if self.overlap_spin.value() >= 0 else None,
            device=self.device_combo.currentText(),
            min_area=self.min_area_spin.value() or None,
            simplify=self.simplify_spin.value() or None,
            overwrite=self.overwrite_check.isChecked(),
        )

    # -------------------------------------------------------------------- run
    def start_run(self) -> Optional[SegmentTask]:
        """Start a SegmentTask for the dialog's request; returns it (None when refused)."""
        if self.task is not None:
            return None
        if self.engine is None or not self.engine.ok:
            message = self.engine.message if self.engine else "jess-geo has not been checked yet."
            self._set_label(self.status_label, message, ERROR_STYLE)
            return None
        try:
            request = self.request()
        except ValueError as error:
            self._set_label(self.status_label, str(error), ERROR_STYLE)
            self._report(str(error), Qgis.Warning)
            return None
        settings.remember_model(request.model)
        settings.remember_device(request.device)
        task = SegmentTask(self.engine.executable, request, self.iface.messageBar(), QgsProject.instance())
        task.progressChanged.connect(self._progress)
        task.stageChanged.connect(lambda text: self._set_label(self.status_label, text, ""))
        task.outcomeReady.connect(self._run_over)
        self.task = task
        self.last_outcome = None
        self.progress_bar.setValue(0)
        self._set_label(self.status_label, f"Starting jess-geo on {request.scene_name} ...", "")
        self._update_run_button()
        QgsApplication.taskManager().addTask(task)
        return task

    def cancel_run(self) -> None:
        if self.task is not None:
            self._set_label(self.status_label, "Cancelling ...", "")
            self.task.cancel()

    def _progress(self, value: float) -> None:
        self.progress_bar.setValue(int(round(value)))

    def _run_over(self, outcome) -> None:
        self.task = None
        self.last_outcome = outcome
        if isinstance(outcome, Success):
            self.progress_bar.setValue(100)
            self._set_label(self.status_label, "Done; the results were added to the project.", OK_STYLE)
        elif isinstance(outcome, Failed):
            self._set_label(self.status_label, outcome.message, ERROR_STYLE)
        elif isinstance(outcome, Canceled):
            self.progress_bar.setValue(0)
            self._set_label(self.status_label, "Cancelled; no files were written.", "")
        self._update_run_button()

    def is_running(self) -> bool:
        return self.task is not None

    # ----------------------------------------------------------------- helpers
    def _update_run_button(self) -> None:
        ready = self.engine is not None and self.engine.ok and not self.model_error
        self.run_button.setEnabled(ready and self.task is None)
        self.cancel_run_button.setEnabled(self.task is not None)

    @staticmethod
    def _set_label(label: QLabel, text: str, style: str) -> None:
        label.setText(text)
        label.setStyleSheet(style)

    def _report(self, message: str, level) -> None:
        """Show a problem once in QGIS's message bar as well as in the dialog."""
        if message in self._reported or self.iface is None:
            return
        self._reported.add(message)
        self.iface.messageBar().pushMessage("jess-geo", message, level, 15)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.engine is None and not self._version_probe.is_running():
            self.refresh_engine()

    def closeEvent(self, event) -> None:
        # A run goes on in the background (QGIS's task manager shows it); probes stop.
        self._version_probe.stop()
        self._info_probe.stop()
        if self.engine is None:
            self._reported.clear()
        super().closeEvent(event)
