"""The widgets of the "Segment with jess-geo" dialog, laid out (no behaviour here).

Each ``build_*`` function creates one group box and sets its widgets as attributes of
``owner`` (the dialog), under the names the dialog and the tests use.
"""

from __future__ import annotations

from qgis.core import QgsMapLayerProxyModel
from qgis.gui import QgsDoubleSpinBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QToolButton,
)

from .request import DEVICES, TTA_CHOICES

MODEL_FILTER = "jess-geo models (*.pt *.onnx);;PyTorch model files (*.pt);;ONNX models (*.onnx);;All files (*)"
RASTER_FILTER = "Rasters (*.tif *.tiff *.vrt *.img *.jp2 *.png *.jpg *.jpeg);;All files (*)"
RASTER_OUTPUT_FILTER = "GeoTIFF (*.tif *.tiff)"
VECTOR_OUTPUT_FILTER = (
    "GeoPackage (*.gpkg);;FlatGeobuf (*.fgb);;GeoJSON (*.geojson);;ESRI Shapefile (*.shp)"
)


def info_label(name: str) -> QLabel:
    """A wrapping, selectable label for messages."""
    label = QLabel("")
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    return label


def file_widget(name: str, file_filter: str, save: bool) -> QgsFileWidget:
    """A file field that opens a file (``save`` False) or names a new one."""
    widget = QgsFileWidget()
    widget.setObjectName(name)
    widget.setStorageMode(QgsFileWidget.SaveFile if save else QgsFileWidget.GetFile)
    widget.setFilter(file_filter)
    if save:
        widget.setConfirmOverwrite(False)
    return widget


def build_input(owner) -> QGroupBox:
    """Input raster (a project layer or a file) and model file."""
    box = QGroupBox("Input and model")
    form = QFormLayout(box)
    owner.layer_combo = QgsMapLayerComboBox()
    owner.layer_combo.setObjectName("inputLayerCombo")
    owner.layer_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
    owner.layer_combo.setShowCrs(True)
    owner.browse_button = QToolButton()
    owner.browse_button.setObjectName("browseInputButton")
    owner.browse_button.setText("…")
    owner.browse_button.setToolTip("Segment a raster file that is not in the project")
    row = QHBoxLayout()
    row.addWidget(owner.layer_combo, 1)
    row.addWidget(owner.browse_button)
    form.addRow("Input raster", row)
    owner.model_widget = file_widget("modelWidget", MODEL_FILTER, save=False)
    owner.model_widget.lineEdit().setPlaceholderText("demo model shipped with jess-geo")
    form.addRow("Model file", owner.model_widget)
    owner.model_label = info_label("modelInfo")
    form.addRow(owner.model_label)
    return box


def _optional_output(owner, form: QFormLayout, key: str, label: str, file_filter: str) -> None:
    check = QCheckBox(label)
    check.setObjectName(f"{key}Check")
    widget = file_widget(f"{key}Output", file_filter, save=True)
    setattr(owner, f"{key}_check", check)
    setattr(owner, f"{key}_widget", widget)
    form.addRow(check, widget)


def build_outputs(owner) -> QGroupBox:
    """Class raster, polygons, probabilities, energy, the engine's plan, and overwrite."""
    box = QGroupBox("Outputs")
    form = QFormLayout(box)
    owner.classes_widget = file_widget("classesOutput", RASTER_OUTPUT_FILTER, save=True)
    form.addRow("Class raster", owner.classes_widget)
    _optional_output(owner, form, "vector", "Polygons", VECTOR_OUTPUT_FILTER)
    owner.vector_check.setChecked(True)
    _optional_output(owner, form, "probabilities", "Probabilities", RASTER_OUTPUT_FILTER)
    _optional_output(owner, form, "energy", "Energy", RASTER_OUTPUT_FILTER)
    owner.energy_check.setToolTip("Per-pixel free energy: high where the scene is unlike the training data")
    owner.plan_label = info_label("planInfo")
    form.addRow(owner.plan_label)
    owner.overwrite_check = QCheckBox("Replace existing files")
    owner.overwrite_check.setObjectName("overwriteCheck")
    form.addRow(owner.overwrite_check)
    return box


def _spin(name: str, maximum: int, step: int, minimum: int = 0) -> QSpinBox:
    spin = QSpinBox()
    spin.setObjectName(name)
    spin.setRange(minimum, maximum)
    spin.setSingleStep(step)
    spin.setSpecialValueText("model default")
    spin.setSuffix(" px")
    return spin


def _double_spin(name: str, maximum: float, decimals: int, special: str, tip: str) -> QgsDoubleSpinBox:
    spin = QgsDoubleSpinBox()
    spin.setObjectName(name)
    spin.setRange(0.0, maximum)
    spin.setDecimals(decimals)
    spin.setSpecialValueText(special)
    spin.setToolTip(tip)
    return spin


def choice(name: str, items, tip: str = "") -> QComboBox:
    """A combo box of fixed string choices, named for tests and styles."""
    combo = QComboBox()
    combo.setObjectName(name)
    combo.addItems(list(items))
    if tip:
        combo.setToolTip(tip)
    return combo


def build_options(owner) -> QGroupBox:
    """Tile size, overlap, device, polygon minimum area and simplification."""
    box = QGroupBox("Options")
    form = QFormLayout(box)
    owner.tile_spin = _spin("tileSize", 16384, 32)
    form.addRow("Tile size", owner.tile_spin)
    owner.overlap_spin = _spin("overlap", 8192, 8, minimum=-1)
    owner.overlap_spin.setValue(-1)
    form.addRow("Overlap", owner.overlap_spin)
    owner.device_combo = choice("device", DEVICES)
    form.addRow("Device", owner.device_combo)
    owner.tta_combo = choice("tta", TTA_CHOICES, "Test-time augmentation: average the network over 4 flips or "
                             "the 8 dihedral views of every tile (4x or 8x the network time)")
    form.addRow("Test-time augmentation", owner.tta_combo)
    owner.min_area_spin = _double_spin(
        "minArea", 1e12, 2, "keep all polygons",
        "Regions smaller than this (m², px² for photos) are merged into a neighbour")
    form.addRow("Minimum area", owner.min_area_spin)
    owner.simplify_spin = _double_spin(
        "simplify", 1e6, 3, "no simplification",
        "Topology-preserving simplification tolerance in map units (pixels for photos)")
    form.addRow("Simplify", owner.simplify_spin)
    return box


def build_buttons(owner) -> QDialogButtonBox:
    """Run, Cancel run and Close."""
    buttons = QDialogButtonBox()
    owner.run_button = buttons.addButton("Run", QDialogButtonBox.AcceptRole)
    owner.run_button.setObjectName("runButton")
    owner.cancel_run_button = buttons.addButton("Cancel run", QDialogButtonBox.ActionRole)
    owner.cancel_run_button.setObjectName("cancelRunButton")
    owner.cancel_run_button.setEnabled(False)
    owner.close_button = buttons.addButton(QDialogButtonBox.Close)
    return buttons
