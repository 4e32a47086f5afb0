"""The Processing provider "jess-geo" (id ``jessgeo``)."""

from __future__ import annotations

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithm import SegmentRasterAlgorithm

ICON_PATH = os.path.join(os.path.dirname(__file__), "icon.svg")


class JessGeoProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "jessgeo"

    def name(self) -> str:
        return "jess-geo"

    def longName(self) -> str:
        return "jess-geo: ground-cover segmentation with U-Nets and JESS"

    def icon(self) -> QIcon:
        return QIcon(ICON_PATH)

    def svgIconPath(self) -> str:
        return ICON_PATH

    def loadAlgorithms(self) -> None:
        self.addAlgorithm(SegmentRasterAlgorithm())

    def supportedOutputRasterLayerExtensions(self):
        return ["tif"]

    def supportedOutputVectorLayerExtensions(self):
        return ["gpkg"]

    def defaultRasterFileExtension(self) -> str:
        return "tif"

    def defaultVectorFileExtension(self, hasGeometry: bool = True) -> str:
        return "gpkg"
