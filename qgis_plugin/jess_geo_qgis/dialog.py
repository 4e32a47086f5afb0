"""The "Segment with jess-geo" dialog: choose a raster, a model and outputs, then run.

Widgets are laid out in :mod:`segment_widgets`; the form's rules live in :mod:`request`
(pure). Output names come from the engine (``predict ... --dry-run --json``), never from here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

from qgis.core import Qgis, QgsApplication, QgsProject
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QDialog, QFileDialog, QProgressBar, QVBoxLayout, QWidget

from . import settings
from .area_widgets import area_fields, build_area, parse_bands
from .correction_panel import CorrectionPanel
from .engine_panel import ERROR_STYLE, OK_STYLE, EnginePanel, set_label
from .environment import EngineError, info_command, interpret_info, model_defaults
from .probe import Probe
from .protocol import Canceled, Failed, Success, error_from_stderr, parse_plans
from .request import DEVICES, PredictForm, PredictRequest, build_predict_command, planning_request, proposals, request_from_form
from .segment_widgets import RASTER_FILTER, build_buttons, build_input, build_options, build_outputs, info_label
from .sources import file_path_problem, raster_file
from .task import SegmentTask


class SegmentDialog(QDialog):
    """Collects a PredictRequest, checks jess-geo, and runs a SegmentTask with progress."""

    def __init__(self, iface, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.iface = iface
        self.setObjectName("JessGeoSegmentDialog")
        self.setWindowTitle("Segment with jess-geo")
        self.setMinimumWidth(660)
        self.model_error = ""
        self.model_info: dict = {}
        self.task: Optional[SegmentTask] = None
        self.last_outcome = None
        self.plan = None
        self._auto: Dict[str, str] = {}
        self._reported = set()
        self._info_probe = Probe(self)
        self._plan_probe = Probe(self)
        self._build()
        self._connect()
        self._load_settings()

    @property
    def engine(self):
        """The latest check of the jess-geo executable (None while it runs)."""
        return self.engine_panel.engine

    @property
    def environment_label(self):
        return self.engine_panel.label

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self.engine_panel = EnginePanel(self)
        layout.addWidget(self.engine_panel)
        for build in (build_input, build_outputs, build_options, build_area):
            layout.addWidget(build(self))
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("progressBar")
        self.progress_bar.setRange(0, 100)
        layout.addWidget(self.progress_bar)
        self.status_label = info_label("runStatus")
        layout.addWidget(self.status_label)
        self.correction_panel = CorrectionPanel(self)
        layout.addWidget(self.correction_panel)
        layout.addWidget(build_buttons(self))
        self._model_timer = self._timer()
        self._plan_timer = self._timer()

    def _timer(self) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(400)
        return timer

    def _connect(self) -> None:
        self.engine_panel.checked.connect(self._engine_checked)
        self.model_widget.fileChanged.connect(lambda _path: self._model_timer.start())
        self._model_timer.timeout.connect(self._model_edited)
        self.layer_combo.layerChanged.connect(lambda _layer: self._plan_timer.start())
        self.layer_combo.currentIndexChanged.connect(lambda _index: self._plan_timer.start())
        self.classes_widget.fileChanged.connect(lambda _path: self._plan_timer.start())
        self._plan_timer.timeout.connect(self.propose_outputs)
        self.browse_button.clicked.connect(self._browse_input)
        for check, widget in ((self.vector_check, self.vector_widget),
                              (self.probabilities_check, self.probabilities_widget),
                              (self.energy_check, self.energy_widget)):
            check.toggled.connect(widget.setEnabled)
            widget.setEnabled(check.isChecked())
        self.vector_check.toggled.connect(lambda _on: self._plan_timer.start())
        self.run_button.clicked.connect(self.start_run)
        self.cancel_run_button.clicked.connect(self.cancel_run)
        self.close_button.clicked.connect(self.close)

    def _load_settings(self) -> None:
        self.model_widget.blockSignals(True)
        self.model_widget.setFilePath(settings.remembered_model())
        self.model_widget.blockSignals(False)
        device = settings.remembered_device()
        if device in DEVICES:
            self.device_combo.setCurrentText(device)

    def refresh_engine(self, force: bool = False) -> None:
        """Check the executable again (the result arrives in ``_engine_checked``)."""
        self._update_run_button()
        self.engine_panel.refresh(force)

    def _engine_checked(self, check) -> None:
        if check.ok:
            self.refresh_model()
            self.propose_outputs()
        else:
            self._report(check.message, Qgis.Warning)
        self._update_run_button()

    # ------------------------------------------------------------------ model
    def model_path(self) -> str:
        return self.model_widget.filePath().strip()

    def _model_edited(self) -> None:
        settings.remember_model(self.model_path())
        self.refresh_model()
        self.propose_outputs()

    def refresh_model(self) -> None:
        """Read the model's metadata with `jess-geo info --json` and take its defaults."""
        if self.engine is None or not self.engine.ok:
            return
        model = self.model_path()
        if model and not os.path.isfile(model):
            self._model_read(error=f"The model file {model} does not exist; choose a jess-geo model file (.pt or .onnx) or leave it empty for the demo model.")
            return
        self.model_error = ""
        set_label(self.model_label, "Reading the model file...")
        self._info_probe.start(info_command(self.engine.executable, model), self._info_answered)

    def _info_answered(self, code, out: str, err: str, start_error: str) -> None:
        if code is None:
            self._model_read(error=f"Could not start jess-geo ({start_error}).")
            return
        try:
            self._model_read(info=interpret_info(code, out, err))
        except EngineError as error:
            self._model_read(error=str(error))

    def _model_read(self, info=None, error: str = "") -> None:
        self.model_error = error
        self.model_info = info or {}
        if error:
            set_label(self.model_label, error, ERROR_STYLE)
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
            self.bands_edit.setPlaceholderText("model bands " + ",".join(str(b) for b in defaults.bands))
        if defaults.tile_size:
            parts.append(f"tile {defaults.tile_size} px, overlap {defaults.overlap} px")
        source = self.model_path() or "demo model"
        set_label(self.model_label, f"{Path(source).name}: " + "; ".join(parts))
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
        self.propose_outputs()

    def input_path(self):
        """(path, problem): the file to segment, or '' and the sentence explaining why not."""
        layer = self.layer_combo.currentLayer()
        if layer is not None:
            return raster_file(layer)
        text = self.layer_combo.currentText().strip()
        problem = file_path_problem(text)
        return ("", problem) if problem else (text, "")

    def form(self) -> PredictForm:
        """The dialog's fields as typed."""
        scene, problem = self.input_path()
        try:
            area, bands = area_fields(self, self.iface.mapCanvas()), parse_bands(self.bands_edit.text())
        except ValueError as error:
            area, bands, problem = None, (), problem or str(error)
        return PredictForm(
            area=area, bands=bands,
            scene=scene, scene_problem=problem, model=self.model_path(),
            classes=self.classes_widget.filePath(),
            vector_on=self.vector_check.isChecked(), vector=self.vector_widget.filePath(),
            probabilities_on=self.probabilities_check.isChecked(), probabilities=self.probabilities_widget.filePath(),
            energy_on=self.energy_check.isChecked(), energy=self.energy_widget.filePath(),
            tile_size=self.tile_spin.value(), overlap=self.overlap_spin.value(),
            device=self.device_combo.currentText(), tta=self.tta_combo.currentText(),
            min_area=self.min_area_spin.value(),
            simplify=self.simplify_spin.value(), overwrite=self.overwrite_check.isChecked(),
        )

    def propose_outputs(self) -> None:
        """Ask the engine which names this input gets (`predict --dry-run --json`)."""
        if self.engine is None or not self.engine.ok:
            return
        try:
            request = planning_request(self.form(), self._auto)
        except ValueError as error:
            set_label(self.plan_label, str(error), ERROR_STYLE)
            return
        command = build_predict_command(self.engine.executable, request, dry_run=True)
        set_label(self.plan_label, "Asking jess-geo for the output names...")
        self._plan_probe.start(command, self._plan_answered)

    def _plan_answered(self, code, out: str, err: str, start_error: str) -> None:
        plans = parse_plans(out) if code == 0 else []
        if not plans:
            message = start_error or error_from_stderr(err) or (err.strip().splitlines() or ["no output plan"])[-1]
            set_label(self.plan_label, f"jess-geo could not plan the outputs: {message}", ERROR_STYLE)
            return
        self.plan = plans[0]
        widgets = {"classes": self.classes_widget, "vector": self.vector_widget}
        current = {key: widget.filePath() for key, widget in widgets.items()}
        for key, path in proposals(current, self._auto, self.plan).items():
            widgets[key].blockSignals(True)
            widgets[key].setFilePath(path)
            widgets[key].blockSignals(False)
            self._auto[key] = path
        cover = self.plan.outputs.get("cover_csv")
        tiles = f"{self.plan.tiles} tiles" if self.plan.tiles is not None else ""
        set_label(self.plan_label, "; ".join(p for p in (tiles, f"cover table {cover}" if cover else "") if p))

    def request(self) -> PredictRequest:
        """The PredictRequest described by the dialog (raises ValueError with a sentence)."""
        return request_from_form(self.form())

    # -------------------------------------------------------------------- run
    def start_run(self) -> Optional[SegmentTask]:
        """Start a SegmentTask for the dialog's request; returns it (None when refused)."""
        if self.task is not None:
            return None
        if self.engine is None or not self.engine.ok:
            message = self.engine.message if self.engine else "jess-geo has not been checked yet."
            set_label(self.status_label, message, ERROR_STYLE)
            return None
        try:
            request = self.request()
        except ValueError as error:
            set_label(self.status_label, str(error), ERROR_STYLE)
            self._report(str(error), Qgis.Warning)
            return None
        settings.remember_model(request.model)
        settings.remember_device(request.device)
        task = SegmentTask(self.engine.executable, request, self.iface.messageBar(), QgsProject.instance())
        task.progressChanged.connect(lambda value: self.progress_bar.setValue(int(round(value))))
        task.stageChanged.connect(lambda text: set_label(self.status_label, text))
        task.outcomeReady.connect(self._run_over)
        self.task = task
        self.last_outcome = None
        self.progress_bar.setValue(0)
        set_label(self.status_label, f"Starting jess-geo on {request.scene_name} ...")
        self._update_run_button()
        QgsApplication.taskManager().addTask(task)
        return task

    def cancel_run(self) -> None:
        if self.task is not None:
            set_label(self.status_label, "Cancelling ...")
            self.task.cancel()

    def _run_over(self, outcome) -> None:
        self.task = None
        self.last_outcome = outcome
        if isinstance(outcome, Success):
            self.progress_bar.setValue(100)
            set_label(self.status_label, "Done; the results were added to the project.", OK_STYLE)
        elif isinstance(outcome, Failed):
            set_label(self.status_label, outcome.message, ERROR_STYLE)
        elif isinstance(outcome, Canceled):
            self.progress_bar.setValue(0)
            set_label(self.status_label, "Cancelled; no files were written.")
        self._update_run_button()
        self.correction_panel.update_state()

    def is_running(self) -> bool:
        return self.task is not None

    # ----------------------------------------------------------------- helpers
    def _update_run_button(self) -> None:
        ready = self.engine is not None and self.engine.ok and not self.model_error
        self.run_button.setEnabled(ready and self.task is None)
        self.cancel_run_button.setEnabled(self.task is not None)

    def _report(self, message: str, level) -> None:
        """Show a problem once in QGIS's message bar as well as in the dialog."""
        if message in self._reported or self.iface is None:
            return
        self._reported.add(message)
        self.iface.messageBar().pushMessage("jess-geo", message, level, 15)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.engine is None and not self.engine_panel.is_checking():
            self.refresh_engine()

    def closeEvent(self, event) -> None:
        # A run goes on in the background (QGIS's task manager shows it); probes stop.
        for probe in (self.engine_panel, self._info_probe, self._plan_probe):
            probe.stop()
        if self.engine is None:
            self._reported.clear()
        super().closeEvent(event)
