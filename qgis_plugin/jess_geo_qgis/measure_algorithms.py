"""Processing algorithms ``jessgeo:stats``, ``change``, ``sample`` and ``assess``.

Each runs the matching `jess-geo` command from jess-geo's own environment as a child process
(the plugin never imports the engine); the command lines are built in :mod:`measure_commands`.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
    QgsProcessingParameterVectorLayer,
)

from . import settings
from .measure_commands import measure_command, run_measure, stem_of
from .sources import raster_file

CSV_FILTER = "CSV files (*.csv)"
TIF_FILTER = "GeoTIFF (*.tif)"


def _raster(algorithm, parameters, name: str, context) -> str:
    path, problem = raster_file(algorithm.parameterAsRasterLayer(parameters, name, context))
    if problem:
        raise QgsProcessingException(problem)
    return path


def _vector(algorithm, parameters, name: str, context) -> List[str]:
    """``[path]`` or ``[path, layer name]`` of a file-backed vector layer; [] when not given."""
    layer = algorithm.parameterAsVectorLayer(parameters, name, context)
    if layer is None:
        return []
    if layer.providerType() != "ogr":
        raise QgsProcessingException(f"Layer '{layer.name()}' is not a file on disk; save it as a GeoPackage first.")
    parts = layer.source().split("|")
    layer_name = next((p.split("=", 1)[1] for p in parts[1:] if p.startswith("layername=")), "")
    return [parts[0]] + ([layer_name] if layer_name else [])


def _run(command: List[str], feedback) -> Dict[str, str]:
    feedback.pushInfo("jess-geo: " + " ".join(command[1:]))
    try:
        return run_measure(command, is_canceled=feedback.isCanceled, on_log=feedback.pushDebugInfo,
                           on_percent=lambda percent, message: feedback.setProgress(percent))
    except RuntimeError as error:
        raise QgsProcessingException(str(error)) from None


def _executable() -> str:
    check = settings.check_engine()
    if not check.ok:
        raise QgsProcessingException(check.message)
    return check.executable


class _Measure(QgsProcessingAlgorithm):
    NAME = ""
    LABEL = ""
    HELP = ""

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:
        return self.LABEL

    def group(self) -> str:
        return "Measure"

    def groupId(self) -> str:
        return "measure"

    def shortHelpString(self) -> str:
        return self.HELP

    def createInstance(self):
        return type(self)()


class StatsAlgorithm(_Measure):
    NAME, LABEL = "stats", "Cover and landscape metrics"
    HELP = ("Cover (pixels, area m² or px², percent), patches, edge density, aggregation index and the class "
            "adjacency of a class raster, per zone of ZONES or for the whole raster (`jess-geo stats`). "
            "OUTPUT is the CSV table; a JSON file, an adjacency CSV and, with zones, a GeoPackage copy of the "
            "zones with pct_<class> fields are written beside it.")

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Class raster"))
        self.addParameter(QgsProcessingParameterVectorLayer("ZONES", "Zones (plots)", [QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterField("ZONE_FIELD", "Zone name field", parentLayerParameterName="ZONES", optional=True))
        self.addParameter(QgsProcessingParameterEnum("CONNECTIVITY", "Patch connectivity", options=["8", "4"],
                                                     defaultValue="8", usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Statistics table", fileFilter=CSV_FILTER))
        self.addOutput(QgsProcessingOutputFile("JSON", "Statistics (JSON)"))
        self.addOutput(QgsProcessingOutputVectorLayer("ZONES_COVER", "Zones with cover", QgsProcessing.TypeVectorPolygon))

    def processAlgorithm(self, parameters, context, feedback) -> Dict[str, Optional[str]]:
        zones = _vector(self, parameters, "ZONES", context)
        field = self.parameterAsString(parameters, "ZONE_FIELD", context) if zones else ""
        stem = stem_of(self.parameterAsFileOutput(parameters, "OUTPUT", context))
        command = measure_command(_executable(), "stats", [_raster(self, parameters, "INPUT", context)], [
            ("--zones", zones[0] if zones else None), ("--zone-layer", zones[1] if len(zones) > 1 else None),
            ("--zone-field", field or None), ("--connectivity", self.parameterAsEnumString(parameters, "CONNECTIVITY", context)),
            ("-o", stem)])
        out = _run(command, feedback)
        return {"OUTPUT": out.get(".csv"), "JSON": out.get(".json"), "ZONES_COVER": out.get(".gpkg")}


class ChangeAlgorithm(_Measure):
    NAME, LABEL = "change", "Change between two class rasters"
    HELP = ("From-to transitions between BEFORE and AFTER (`jess-geo change`): a change raster with one value "
            "per from-to pair, change polygons (from_class, to_class, area), transition and per-class "
            "gain/loss/net/persistence tables and a PNG chart, all named after OUTPUT. AFTER is resampled onto "
            "BEFORE's grid (nearest) when they differ; MAPPING maps AFTER class ids to BEFORE's.")

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("BEFORE", "Before (class raster)"))
        self.addParameter(QgsProcessingParameterRasterLayer("AFTER", "After (class raster)"))
        self.addParameter(QgsProcessingParameterFile("MAPPING", "Class mapping (JSON, optional)", optional=True,
                                                     fileFilter="JSON (*.json)"))
        self.addParameter(QgsProcessingParameterVectorLayer("ZONES", "Zones (plots)", [QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterField("ZONE_FIELD", "Zone name field", parentLayerParameterName="ZONES", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Change raster", fileFilter=TIF_FILTER))
        self.addOutput(QgsProcessingOutputVectorLayer("POLYGONS", "Change polygons", QgsProcessing.TypeVectorPolygon))
        self.addOutput(QgsProcessingOutputFile("TRANSITIONS", "Transitions (CSV)"))
        self.addOutput(QgsProcessingOutputFile("CLASSES", "Gain and loss per class (CSV)"))
        self.addOutput(QgsProcessingOutputFile("CHART", "Chart (PNG)"))

    def processAlgorithm(self, parameters, context, feedback) -> Dict[str, Optional[str]]:
        zones = _vector(self, parameters, "ZONES", context)
        if len(zones) > 1:
            raise QgsProcessingException("Zones for change must be the first layer of their file; save them as their own GeoPackage.")
        field = self.parameterAsString(parameters, "ZONE_FIELD", context) if zones else ""
        stem = stem_of(self.parameterAsFileOutput(parameters, "OUTPUT", context))
        mapping = (self.parameterAsFile(parameters, "MAPPING", context) or "").strip()
        command = measure_command(_executable(), "change", [_raster(self, parameters, "BEFORE", context),
                                                           _raster(self, parameters, "AFTER", context)], [
            ("--mapping", mapping or None), ("--zones", zones[0] if zones else None), ("--zone-field", field or None),
            ("-o", stem)])
        out = _run(command, feedback)
        return {"OUTPUT": out.get(".tif"), "POLYGONS": out.get(".gpkg"), "TRANSITIONS": out.get("_transitions.csv"),
                "CLASSES": out.get("_classes.csv"), "CHART": out.get(".png")}


class SampleAlgorithm(_Measure):
    NAME, LABEL = "sample", "Stratified random sample for accuracy assessment"
    HELP = ("Draws N points from the class raster, stratified by map class (`jess-geo sample`), as a GeoPackage "
            "with an empty integer field 'class' to fill with the reference class and the sampling design "
            "stored beside the points, for 'Accuracy and error-adjusted area'.")

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Class raster"))
        self.addParameter(QgsProcessingParameterNumber("N", "Number of points", QgsProcessingParameterNumber.Integer,
                                                       defaultValue=500, minValue=1))
        self.addParameter(QgsProcessingParameterEnum("ALLOCATION", "Allocation", options=["proportional", "equal"],
                                                     defaultValue="proportional", usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterNumber("MIN_PER_CLASS", "At least per class", QgsProcessingParameterNumber.Integer,
                                                       defaultValue=0, minValue=0))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Random seed", QgsProcessingParameterNumber.Integer, defaultValue=0))
        self.addParameter(QgsProcessingParameterVectorDestination("OUTPUT", "Sample points", QgsProcessing.TypeVectorPoint))

    def processAlgorithm(self, parameters, context, feedback) -> Dict[str, Optional[str]]:
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        if not output.lower().endswith(".gpkg"):
            output = os.path.splitext(output)[0] + ".gpkg"
        command = measure_command(_executable(), "sample", [_raster(self, parameters, "INPUT", context)], [
            ("--n", self.parameterAsInt(parameters, "N", context)),
            ("--allocation", self.parameterAsEnumString(parameters, "ALLOCATION", context)),
            ("--min-per-class", self.parameterAsInt(parameters, "MIN_PER_CLASS", context)),
            ("--seed", self.parameterAsInt(parameters, "SEED", context)), ("-o", output)])
        out = _run(command, feedback)
        return {"OUTPUT": out.get("sample")}


class AssessAlgorithm(_Measure):
    NAME, LABEL = "assess", "Accuracy and error-adjusted area"
    HELP = ("Compares the class raster with labelled reference points (`jess-geo assess`, Olofsson et al. 2014, "
            "map classes as strata): error matrix in counts and area proportions, overall, user's and producer's "
            "accuracy with 95 % confidence intervals, and the error-adjusted area of each class with its 95 % "
            "interval. Points outside the raster, on nodata or unlabelled are counted and reported.")

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Class raster"))
        self.addParameter(QgsProcessingParameterVectorLayer("REFERENCE", "Labelled reference samples"))
        self.addParameter(QgsProcessingParameterField("FIELD", "Reference class field", defaultValue="class",
                                                      parentLayerParameterName="REFERENCE"))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Accuracy table", fileFilter=CSV_FILTER))
        self.addOutput(QgsProcessingOutputFile("CONFUSION", "Error matrix (CSV)"))
        self.addOutput(QgsProcessingOutputFile("JSON", "Assessment (JSON)"))

    def processAlgorithm(self, parameters, context, feedback) -> Dict[str, Optional[str]]:
        reference = _vector(self, parameters, "REFERENCE", context)
        if not reference:
            raise QgsProcessingException("Choose the labelled reference layer.")
        command = measure_command(_executable(), "assess", [_raster(self, parameters, "INPUT", context)], [
            ("--reference", reference[0]), ("--layer", reference[1] if len(reference) > 1 else None),
            ("--field", self.parameterAsString(parameters, "FIELD", context) or "class"),
            ("-o", stem_of(self.parameterAsFileOutput(parameters, "OUTPUT", context)))])
        out = _run(command, feedback)
        return {"OUTPUT": out.get(".csv"), "CONFUSION": out.get("_confusion.csv"), "JSON": out.get(".json")}


MEASURE_ALGORITHMS = (StatsAlgorithm, ChangeAlgorithm, SampleAlgorithm, AssessAlgorithm)
