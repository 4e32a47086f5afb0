"""The Processing provider "jess-geo" (id ``jessgeo``)."""

from __future__ import annotations

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithm import RASTER_EXTENSIONS, VECTOR_EXTENSIONS, SegmentRasterAlgorithm
from .measure_algorithms import MEASURE_ALGORITHMS
from .train_algorithms import AdaptAlgorithm, TrainAlgorithm

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
        self.addAlgorithm(TrainAlgorithm())
        self.addAlgorithm(AdaptAlgorithm())
        for algorithm in MEASURE_ALGORITHMS:
            self.addAlgorithm(algorithm())

    def supportsNonFileBasedOutput(self) -> bool:
        # jess-geo writes files: no memory or database layers as outputs.
        return False

    def supportedOutputRasterLayerExtensions(self):
        return list(RASTER_EXTENSIONS)

    def supportedOutputVectorLayerExtensions(self):
        return list(VECTOR_EXTENSIONS)

    def defaultRasterFileExtension(self) -> str:
        return RASTER_EXTENSIONS[0]

    def defaultVectorFileExtension(self, hasGeometry: bool = True) -> str:
        return VECTOR_EXTENSIONS[0]
