"""Processing algorithm ``jessgeo:segmentraster``: the same run as the toolbar button."""

from __future__ import annotations

from typing import Dict, List, Optional

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
    QgsRasterLayer,
    QgsVectorLayer,
)

from . import settings
from .protocol import Canceled, ClassEntry, Failed
from .request import DEVICES, PredictRequest
from .runner import run_predict
from .sources import raster_file
from .styling import style_class_raster, style_polygons

HELP = """Segments a raster into ground-cover classes with a jess-geo model and writes a class
GeoTIFF (in the model's class colours) and, optionally, polygons in a GeoPackage
(fields class_id, class_name, area_m2, ...), a probability raster and an energy raster.

jess-geo runs as a separate program from its own Python environment: install it with
`pip install jess-geo` in a virtual environment and set the path of its executable in the
"Segment with jess-geo" dialog (or put it on PATH, or set JESS_GEO_EXE).

MODEL: a jess-geo model file; empty uses the small demo model shipped with jess-geo.
TILE_SIZE and OVERLAP (pixels): empty or 0 use the model file's defaults.
MIN_AREA drops smaller polygons (m², px² for photos); SIMPLIFY is a topology-preserving
tolerance in map units (0 = none)."""


class _StyleOnLoad(QgsProcessingLayerPostProcessorInterface):
    """Gives a loaded output the model's class colours and names."""

    def __init__(self, classes: List[ClassEntry]):
        super().__init__()
        self.classes = classes

    def postProcessLayer(self, layer, context, feedback) -> None:
        if isinstance(layer, QgsRasterLayer):
            style_class_raster(layer, self.classes)
        elif isinstance(layer, QgsVectorLayer):
            style_polygons(layer, self.classes)


# Post-processors must outlive processAlgorithm(); QGIS does not own Python instances.
_POST_PROCESSORS: List[_StyleOnLoad] = []


class SegmentRasterAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    MODEL = "MODEL"
    OUTPUT = "OUTPUT"
    VECTOR_OUTPUT = "VECTOR_OUTPUT"
    PROBABILITIES = "PROBABILITIES"
    ENERGY = "ENERGY"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    DEVICE = "DEVICE"
    MIN_AREA = "MIN_AREA"
    SIMPLIFY = "SIMPLIFY"

    def name(self) -> str:
        return "segmentraster"

    def displayName(self) -> str:
        return "Segment raster"

    def shortHelpString(self) -> str:
        return HELP

    def tags(self) -> List[str]:
        return ["segmentation", "classification", "deep learning", "u-net", "land cover", "jess"]

    def createInstance(self) -> "SegmentRasterAlgorithm":
        return SegmentRasterAlgorithm()

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Input raster"))
        self.addParameter(
            QgsProcessingParameterFile(
                self.MODEL,
                "Model file (empty = demo model)",
                behavior=QgsProcessingParameterFile.File,
                fileFilter="jess-geo model files (*.pt *.pth *.ckpt *.jgm);;All files (*.*)",
                optional=True,
            )
        )
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Class raster"))
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.VECTOR_OUTPUT, "Polygons", QgsProcessing.TypeVectorPolygon,
                optional=True, createByDefault=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.PROBABILITIES, "Class probabilities", optional=True, createByDefault=False
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.ENERGY, "Energy (unlike the training data)", optional=True, createByDefault=False
            )
        )
        for name, label in ((self.TILE_SIZE, "Tile size, px (empty = model default)"),
                            (self.OVERLAP, "Overlap, px (empty = model default)")):
            self.addParameter(
                QgsProcessingParameterNumber(
                    name, label, QgsProcessingParameterNumber.Integer, optional=True, minValue=0
                )
            )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.DEVICE, "Device", options=list(DEVICES), defaultValue="auto", usesStaticStrings=True
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MIN_AREA, "Minimum polygon area (m², px² for photos)",
                QgsProcessingParameterNumber.Double, defaultValue=0.0, optional=True, minValue=0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.SIMPLIFY, "Simplify tolerance (map units)",
                QgsProcessingParameterNumber.Double, defaultValue=0.0, optional=True, minValue=0.0,
            )
        )

    @staticmethod
    def _given(parameters: Dict, name: str) -> bool:
        value = parameters.get(name)
        return value is not None and value != ""

    def _optional_int(self, parameters, name, context, zero_is_default: bool) -> Optional[int]:
        if not self._given(parameters, name):
            return None
        value = self.parameterAsInt(parameters, name, context)
        return None if (zero_is_default and value == 0) else value

    def _optional_output(self, parameters, name, context) -> str:
        if not self._given(parameters, name):
            return ""
        return self.parameterAsOutputLayer(parameters, name, context) or ""

    def processAlgorithm(self, parameters, context, feedback) -> Dict[str, Optional[str]]:
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        scene, problem = raster_file(layer)
        if problem:
            raise QgsProcessingException(problem)
        check = settings.check_engine()
        if not check.ok:
            raise QgsProcessingException(check.message)
        feedback.pushInfo(f"jess-geo {check.version}: {check.executable}")

        vector_path = self._optional_output(parameters, self.VECTOR_OUTPUT, context)
        min_area = self.parameterAsDouble(parameters, self.MIN_AREA, context) if self._given(parameters, self.MIN_AREA) else 0.0
        simplify = self.parameterAsDouble(parameters, self.SIMPLIFY, context) if self._given(parameters, self.SIMPLIFY) else 0.0
        request = PredictRequest(
            scene=scene,
            model=(self.parameterAsFile(parameters, self.MODEL, context) or "").strip(),
            classes_path=self.parameterAsOutputLayer(parameters, self.OUTPUT, context),
            vector=bool(vector_path),
            vector_path=vector_path,
            probabilities_path=self._optional_output(parameters, self.PROBABILITIES, context),
            energy_path=self._optional_output(parameters, self.ENERGY, context),
            tile_size=self._optional_int(parameters, self.TILE_SIZE, context, zero_is_default=True),
            overlap=self._optional_int(parameters, self.OVERLAP, context, zero_is_default=False),
            device=self.parameterAsEnumString(parameters, self.DEVICE, context) or "auto",
            min_area=min_area or None,
            simplify=simplify or None,
            overwrite=True,  # Processing replaces its outputs
        )

        stages = []

        def progress(event) -> None:
            if event.stage not in stages:
                stages.append(event.stage)
                feedback.pushInfo(f"jess-geo: {event.stage}")
            if event.percent is not None:
                share = {"predict": (0.0, 0.8), "vectorize": (80.0, 0.19)}.get(event.stage, (0.0, 1.0))
                feedback.setProgress(share[0] + share[1] * event.percent)
            if event.message:
                feedback.setProgressText(event.message)

        outcome = run_predict(
            check.executable, request,
            on_progress=progress, is_canceled=feedback.isCanceled, on_log=feedback.pushDebugInfo,
        )
        if isinstance(outcome, Failed):
            raise QgsProcessingException(outcome.message)
        if isinstance(outcome, Canceled):
            feedback.reportError("Cancelled; no output files were written.")
            return {}

        classes_path = outcome.outputs.get("classes") or request.classes_path
        results = {
            self.OUTPUT: classes_path,
            self.VECTOR_OUTPUT: outcome.outputs.get("vector") if request.vector else None,
            self.PROBABILITIES: outcome.outputs.get("probabilities") or None,
            self.ENERGY: outcome.outputs.get("energy") or None,
        }
        if outcome.classes:
            for key in (self.OUTPUT, self.VECTOR_OUTPUT):
                path = results[key]
                if path and context.willLoadLayerOnCompletion(path):
                    styler = _StyleOnLoad(list(outcome.classes))
                    _POST_PROCESSORS.append(styler)
                    context.layerToLoadOnCompletionDetails(path).setPostProcessor(styler)
        return results
