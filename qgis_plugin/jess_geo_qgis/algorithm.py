"""Processing algorithm ``jessgeo:segmentraster``: the same run as the toolbar button.

jess-geo writes files, so every destination here is a file (GeoTIFF rasters; GeoPackage,
FlatGeobuf, GeoJSON or Shapefile polygons): a temporary output becomes a temporary file, and
a ``memory:`` layer is refused with a sentence instead of becoming a file called "memory:".
"""

from __future__ import annotations

from typing import Dict, List, Optional

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputFile,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsRasterLayer,
    QgsVectorLayer,
)

from . import settings
from .area import extent_area, parse_bands
from .protocol import Canceled, ClassEntry, Failed
from .request import DEVICES, TTA_CHOICES, PredictRequest, file_output_problem
from .runner import run_predict
from .sources import raster_file
from .styling import style_class_raster, style_polygons

MODEL_FILE_FILTER = "jess-geo models (*.pt *.onnx);;PyTorch model files (*.pt);;ONNX models (*.onnx);;All files (*.*)"
RASTER_EXTENSIONS = ("tif",)
VECTOR_EXTENSIONS = ("gpkg", "fgb", "geojson", "shp")

HELP = "\n\n".join([
    "Segments a raster into ground-cover classes with a jess-geo model and writes a class GeoTIFF "
    "(in the model's class colours and names), a cover table (CSV and JSON: area and percent per "
    "class) and, optionally, polygons (fields class_id, class_name, area_m2, ...), a probability "
    "raster and an energy raster.",
    "jess-geo runs as a separate program from its own Python environment: install it with "
    "`pip install jess-geo` in a virtual environment and set the path of its jess-geo executable in "
    "the \"Segment with jess-geo\" dialog, or set the JESS_GEO_EXE environment variable.",
    "MODEL: a jess-geo model file (.pt, or .onnx exported with `jess-geo export`); empty uses the "
    "small demo model shipped with jess-geo.",
    "Outputs are files: GeoTIFF for rasters; GeoPackage, FlatGeobuf, GeoJSON or Shapefile for the "
    "polygons (by extension). Temporary outputs are temporary files; memory layers are not supported.",
    "TILE_SIZE and OVERLAP (pixels): empty or 0 use the model file's defaults. Regions smaller than "
    "MIN_AREA (m², px² for photos) are merged into a neighbour; SIMPLIFY is a topology-preserving "
    "tolerance in map units (0 = none).",
])


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

# Share of the progress bar for each engine stage: (start, width / 100).
STAGE_SHARES = {"predict": (0.0, 0.8), "vectorize": (80.0, 0.19)}


class SegmentRasterAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    MODEL = "MODEL"
    OUTPUT = "OUTPUT"
    VECTOR_OUTPUT = "VECTOR_OUTPUT"
    PROBABILITIES = "PROBABILITIES"
    ENERGY = "ENERGY"
    COVER_CSV = "COVER_CSV"
    COVER_JSON = "COVER_JSON"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    DEVICE = "DEVICE"
    TTA = "TTA"
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
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, "Model file (.pt or .onnx; empty = demo model)",
            behavior=QgsProcessingParameterFile.File, fileFilter=MODEL_FILE_FILTER, optional=True))
        destinations = [
            QgsProcessingParameterRasterDestination(self.OUTPUT, "Class raster"),
            QgsProcessingParameterVectorDestination(
                self.VECTOR_OUTPUT, "Polygons", QgsProcessing.TypeVectorPolygon, optional=True, createByDefault=True),
            QgsProcessingParameterRasterDestination(
                self.PROBABILITIES, "Class probabilities", optional=True, createByDefault=False),
            QgsProcessingParameterRasterDestination(
                self.ENERGY, "Energy (unlike the training data)", optional=True, createByDefault=False),
        ]
        for destination in destinations:
            destination.setSupportsNonFileBasedOutput(False)
            self.addParameter(destination)
        self.addOutput(QgsProcessingOutputFile(self.COVER_CSV, "Cover table (CSV)"))
        self.addOutput(QgsProcessingOutputFile(self.COVER_JSON, "Cover table (JSON)"))
        self._add_options()

    def _add_options(self) -> None:
        for name, label in ((self.TILE_SIZE, "Tile size, px (empty = model default)"),
                            (self.OVERLAP, "Overlap, px (empty = model default)")):
            self.addParameter(QgsProcessingParameterNumber(
                name, label, QgsProcessingParameterNumber.Integer, optional=True, minValue=0))
        self.addParameter(QgsProcessingParameterEnum(
            self.DEVICE, "Device", options=list(DEVICES), defaultValue="auto", usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterEnum(
            self.TTA, "Test-time augmentation (flips: 4x, d4: 8x the network time)", options=list(TTA_CHOICES),
            defaultValue="none", usesStaticStrings=True, optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.MIN_AREA, "Minimum region area (m², px² for photos; smaller ones are merged)",
            QgsProcessingParameterNumber.Double, defaultValue=0.0, optional=True, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.SIMPLIFY, "Simplify tolerance (map units)",
            QgsProcessingParameterNumber.Double, defaultValue=0.0, optional=True, minValue=0.0))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Segment only this extent (empty = entire layer)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "AOI", "Segment only inside these polygons", [QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterString("BANDS", "Layer bands for the model's inputs, e.g. 3,2,1",
                                                       optional=True))

    @staticmethod
    def _given(parameters: Dict, name: str) -> bool:
        value = parameters.get(name)
        return value is not None and value != ""

    def _optional_int(self, parameters, name, context, zero_is_default: bool) -> Optional[int]:
        if not self._given(parameters, name):
            return None
        value = self.parameterAsInt(parameters, name, context)
        return None if (zero_is_default and value == 0) else value

    def _optional_float(self, parameters, name, context) -> Optional[float]:
        value = self.parameterAsDouble(parameters, name, context) if self._given(parameters, name) else 0.0
        return value or None

    def _output(self, parameters, name, context) -> str:
        if not self._given(parameters, name):
            return ""
        path = self.parameterAsOutputLayer(parameters, name, context) or ""
        problem = file_output_problem(path, self.parameterDefinition(name).description())
        if problem:
            raise QgsProcessingException(problem)
        return path

    def _request(self, parameters, context) -> PredictRequest:
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        scene, problem = raster_file(layer)
        if problem:
            raise QgsProcessingException(problem)
        vector_path = self._output(parameters, self.VECTOR_OUTPUT, context)
        return PredictRequest(
            scene=scene,
            model=(self.parameterAsFile(parameters, self.MODEL, context) or "").strip(),
            classes_path=self._output(parameters, self.OUTPUT, context),
            vector=bool(vector_path),
            vector_path=vector_path,
            probabilities_path=self._output(parameters, self.PROBABILITIES, context),
            energy_path=self._output(parameters, self.ENERGY, context),
            tile_size=self._optional_int(parameters, self.TILE_SIZE, context, zero_is_default=True),
            overlap=self._optional_int(parameters, self.OVERLAP, context, zero_is_default=False),
            device=self.parameterAsEnumString(parameters, self.DEVICE, context) or "auto",
            tta=self.parameterAsEnumString(parameters, self.TTA, context) or "none",
            min_area=self._optional_float(parameters, self.MIN_AREA, context),
            simplify=self._optional_float(parameters, self.SIMPLIFY, context),
            overwrite=True,  # Processing replaces its outputs
            bands=parse_bands(self.parameterAsString(parameters, "BANDS", context) or ""),
            **self._area(parameters, context),
        )

    def _area(self, parameters, context) -> Dict[str, object]:
        """--aoi (the polygons, selected only when asked: Processing writes them to a file) or --bbox."""
        if self._given(parameters, "AOI"):
            path = self.parameterAsCompatibleSourceLayerPath(parameters, "AOI", context, ["gpkg", "shp"], "gpkg")
            file, _, layer = path.partition("|layername=")
            return {"aoi_path": file, "aoi_layer": layer.split("|")[0]}
        if self._given(parameters, "EXTENT"):
            extent = self.parameterAsExtent(parameters, "EXTENT", context)
            return extent_area(extent, self.parameterAsExtentCrs(parameters, "EXTENT", context))
        return {}

    def processAlgorithm(self, parameters, context, feedback) -> Dict[str, Optional[str]]:
        request = self._request(parameters, context)
        check = settings.check_engine()
        if not check.ok:
            raise QgsProcessingException(check.message)
        feedback.pushInfo(f"jess-geo {check.version}: {check.executable}")
        outcome = run_predict(check.executable, request, on_progress=_feedback_progress(feedback),
                              is_canceled=feedback.isCanceled, on_log=feedback.pushDebugInfo)
        if isinstance(outcome, Failed):
            raise QgsProcessingException(outcome.message)
        if isinstance(outcome, Canceled):
            feedback.reportError("Cancelled; no output files were written.")
            return {}
        outputs = outcome.outputs
        results = {
            self.OUTPUT: outputs.get("classes") or request.classes_path,
            self.VECTOR_OUTPUT: outputs.get("vector") if request.vector else None,
            self.PROBABILITIES: outputs.get("probabilities") or None,
            self.ENERGY: outputs.get("energy") or None,
            self.COVER_CSV: outputs.get("cover_csv") or None,
            self.COVER_JSON: outputs.get("cover_json") or None,
        }
        if outcome.classes:
            _style_on_load(context, [results[self.OUTPUT], results[self.VECTOR_OUTPUT]], outcome.classes)
        return results


def _feedback_progress(feedback):
    """An on_progress callback that moves Processing's bar and names each stage once."""
    stages = []

    def progress(event) -> None:
        if event.stage not in stages:
            stages.append(event.stage)
            feedback.pushInfo(f"jess-geo: {event.stage}")
        if event.percent is not None:
            start, width = STAGE_SHARES.get(event.stage, (0.0, 1.0))
            feedback.setProgress(start + width * event.percent)
        if event.message:
            feedback.setProgressText(event.message)

    return progress


def _style_on_load(context, paths, classes) -> None:
    """Style each output QGIS will load at the end in the model's classes."""
    for path in paths:
        if path and context.willLoadLayerOnCompletion(path):
            styler = _StyleOnLoad(list(classes))
            _POST_PROCESSORS.append(styler)
            context.layerToLoadOnCompletionDetails(path).setPostProcessor(styler)
