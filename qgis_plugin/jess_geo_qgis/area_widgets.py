"""The Segment dialog's "Area and bands" box: entire layer, map canvas extent or a polygon layer; --bands."""

from __future__ import annotations

from typing import Dict

from qgis.core import QgsMapLayerProxyModel
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import QCheckBox, QFormLayout, QGroupBox, QLineEdit

from .area import extent_area, parse_bands, polygon_area  # noqa: F401 (parse_bands used by the dialog)
from .segment_widgets import choice

AREAS = ("Entire layer", "Map canvas extent", "Polygon layer")


def build_area(owner) -> QGroupBox:
    """The area choice (with its polygon layer and 'selected features only') and the band mapping."""
    box = QGroupBox("Area and bands")
    form = QFormLayout(box)
    owner.area_combo = choice("area", AREAS)
    form.addRow("Area", owner.area_combo)
    owner.area_layer_combo = QgsMapLayerComboBox()
    owner.area_layer_combo.setObjectName("areaLayer")
    owner.area_layer_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
    form.addRow("Polygon layer", owner.area_layer_combo)
    owner.area_selected_check = QCheckBox("Selected features only")
    form.addRow(owner.area_selected_check)
    owner.bands_edit = QLineEdit()
    owner.bands_edit.setObjectName("bands")
    owner.bands_edit.setPlaceholderText("the model's bands")
    owner.bands_edit.setToolTip("Layer bands for the model's inputs, in the model's order, e.g. 3,2,1")
    form.addRow("Layer bands", owner.bands_edit)

    def polygon_chosen(index: int) -> None:
        owner.area_layer_combo.setEnabled(index == 2)
        owner.area_selected_check.setEnabled(index == 2)

    owner.area_combo.currentIndexChanged.connect(polygon_chosen)
    polygon_chosen(0)
    return box


def area_fields(owner, canvas) -> Dict[str, object]:
    """PredictRequest fields for the chosen area (raises ValueError for a polygon layer that cannot be used)."""
    choice = owner.area_combo.currentIndex()
    if choice == 1:
        return extent_area(canvas.extent(), canvas.mapSettings().destinationCrs())
    if choice == 2:
        return polygon_area(owner.area_layer_combo.currentLayer(), owner.area_selected_check.isChecked())
    return {}

