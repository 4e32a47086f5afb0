"""Processing algorithms ``jessgeo:train`` and ``jessgeo:adapt`` (the engine runs as a child process)."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Dict, List

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from . import settings
from .environment import EngineError, read_model_info
from .labels_export import export_features
from .protocol import Canceled, Failed
from .sources import raster_file
from .train_runner import run_train
from .training import (
    ACCELERATORS, TrainRequest, classes_from_info, energy_shift, epoch_text, parse_class_lines, shift_text,
)

MODEL_FILTER = "jess-geo model files (*.pt)"
RECIPE_FILTER = "Training recipes (*.yaml *.yml)"
SOURCE_MODEL_FILTER = "jess-geo models (*.pt *.onnx)"

TRAIN_HELP = "\n\n".join([
    "Trains a jess-geo U-Net from raster layers and a polygon layer of labels, by running "
    "`jess-geo train` from jess-geo's own environment. Pixels without a polygon are unlabelled.",
    "CLASS_FIELD holds each polygon's class: a class id or a class name of the table. The class "
    "table comes from CLASSES_FROM_MODEL (a model being refined) or CLASSES, one class a line: "
    "'ID NAME #rrggbb'.",
    "RECIPE is a training YAML such as the project's configs/; EPOCHS and MAX_MINUTES override it. "
    "The model is written to OUTPUT_MODEL only when training succeeds; its curves, confusion matrix "
    "and metrics are kept in the folder <model>_training beside it.",
])
ADAPT_HELP = "\n\n".join([
    "Adapts a jess-geo model to the raster layer on screen without labels (JESS), by running "
    "`jess-geo adapt`. The base model's labelled source data (images and labels folders) keeps it "
    "anchored; the target layer is used unlabelled.",
    "The adapted model keeps the base model's classes, bands and resolution and records what it "
    "was adapted to; it is written to OUTPUT_MODEL only when adaptation succeeds, and becomes the model "
    "of the \"Segment with jess-geo\" dialog. SOURCE_ENERGY and TARGET_ENERGY are the mean free "
    "energies of the adapted model on both (JESS lowers the target's); SOURCE_ENERGY_BEFORE and "
    "TARGET_ENERGY_BEFORE are the base model's on the same data, measured before the first step, and "
    "GAP_BEFORE / GAP_AFTER the target-minus-source gap of each, so the log and the outputs show what "
    "adaptation changed.",
])


def _run(request: TrainRequest, feedback) -> Dict[str, object]:
    """Run ``request`` with the configured engine, reporting epochs; the algorithm's results."""
    check = settings.check_engine()
    if not check.ok:
        raise QgsProcessingException(check.message)
    feedback.pushInfo(f"jess-geo {check.version}: {check.executable}")

    def epoch(row) -> None:
        feedback.pushInfo(epoch_text(row, request.epochs))
        if request.epochs:
            feedback.setProgress(100.0 * row.epoch / request.epochs)

    outcome = run_train(check.executable, request, on_epoch=epoch, is_canceled=feedback.isCanceled,
                        on_log=feedback.pushDebugInfo)
    if isinstance(outcome, Failed):
        raise QgsProcessingException(outcome.message)
    if isinstance(outcome, Canceled):
        feedback.reportError("Cancelled; no model file was written.")
        return {}
    figures = {os.path.basename(p): p for p in outcome.figures}
    results = {
        "OUTPUT_MODEL": outcome.model_path,
        "VAL_ACCURACY": outcome.metrics.get("val_accuracy"),
        "VAL_MIOU": outcome.metrics.get("val_miou"),
        "CURVES": figures.get("curves.png"),
        "CONFUSION": figures.get("confusion_matrix.png"),
        "SOURCE_ENERGY": outcome.metrics.get("source_energy"),
        "TARGET_ENERGY": outcome.metrics.get("target_energy"),
    }
    if "adapted" in outcome.metrics:  # jess-geo adapt: the base model's figures before, the adapted model's after
        summary = shift_text(outcome.metrics)
        if summary:
            feedback.pushInfo(summary)
        results.update(energy_shift(outcome.metrics))
    return results


def _add_common(algorithm) -> None:
    """The recipe, epochs, time limit, device, model file and result outputs of both algorithms."""
    algorithm.addParameter(QgsProcessingParameterFile(
        "RECIPE", "Training recipe (YAML; empty = the engine's defaults)", optional=True,
        fileFilter=RECIPE_FILTER))
    algorithm.addParameter(QgsProcessingParameterNumber(
        "EPOCHS", "Epochs (empty = the recipe's)", QgsProcessingParameterNumber.Integer, optional=True, minValue=1))
    algorithm.addParameter(QgsProcessingParameterNumber(
        "MAX_MINUTES", "Stop after minutes (empty = no limit)", QgsProcessingParameterNumber.Double,
        optional=True, minValue=0.0))
    algorithm.addParameter(QgsProcessingParameterEnum(
        "DEVICE", "Device", options=list(ACCELERATORS), defaultValue="auto", usesStaticStrings=True))
    algorithm.addParameter(QgsProcessingParameterFileDestination("OUTPUT_MODEL", "Model file", fileFilter=MODEL_FILTER))
    algorithm.addOutput(QgsProcessingOutputNumber("VAL_ACCURACY", "Validation accuracy (0-1)"))
    algorithm.addOutput(QgsProcessingOutputNumber("VAL_MIOU", "Validation mIoU (0-1)"))
    algorithm.addOutput(QgsProcessingOutputFile("CURVES", "Training curves (PNG)"))
    algorithm.addOutput(QgsProcessingOutputFile("CONFUSION", "Confusion matrix (PNG)"))
    algorithm.addOutput(QgsProcessingOutputNumber("SOURCE_ENERGY", "Mean free energy on the source data"))
    algorithm.addOutput(QgsProcessingOutputNumber("TARGET_ENERGY", "Mean free energy on the target layer"))


def _common(algorithm, parameters, context) -> dict:
    """The TrainRequest fields both algorithms share."""
    given = lambda name: parameters.get(name) not in (None, "")  # noqa: E731
    return {
        "recipe": (algorithm.parameterAsFile(parameters, "RECIPE", context) or "").strip(),
        "epochs": algorithm.parameterAsInt(parameters, "EPOCHS", context) if given("EPOCHS") else None,
        "max_minutes": algorithm.parameterAsDouble(parameters, "MAX_MINUTES", context) if given("MAX_MINUTES") else None,
        "device": algorithm.parameterAsEnumString(parameters, "DEVICE", context) or "auto",
        "model_path": algorithm.parameterAsFileOutput(parameters, "OUTPUT_MODEL", context),
    }


def _raster_paths(layers) -> List[str]:
    paths = []
    for layer in layers:
        path, problem = raster_file(layer)
        if problem:
            raise QgsProcessingException(problem)
        paths.append(path)
    return paths


class TrainAlgorithm(QgsProcessingAlgorithm):
    """``jessgeo:train``: raster layers + polygon labels -> a new model file."""

    def name(self) -> str:
        return "train"

    def displayName(self) -> str:
        return "Train a model"

    def shortHelpString(self) -> str:
        return TRAIN_HELP

    def createInstance(self) -> "TrainAlgorithm":
        return TrainAlgorithm()

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterMultipleLayers("INPUT", "Raster layers", QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "LABELS", "Label polygons", [QgsProcessing.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterField("CLASS_FIELD", "Class field", parentLayerParameterName="LABELS"))
        self.addParameter(QgsProcessingParameterFile(
            "CLASSES_FROM_MODEL", "Class table from a model file", optional=True, fileFilter=SOURCE_MODEL_FILTER))
        self.addParameter(QgsProcessingParameterString(
            "CLASSES", "Class table, one 'ID NAME #rrggbb' a line", multiLine=True, optional=True))
        _add_common(self)

    def _classes(self, parameters, context):
        from_model = (self.parameterAsFile(parameters, "CLASSES_FROM_MODEL", context) or "").strip()
        if from_model:
            check = settings.check_engine()
            try:
                return classes_from_info(read_model_info(check.executable, from_model))
            except EngineError as error:
                raise QgsProcessingException(str(error)) from error
        try:
            return parse_class_lines(self.parameterAsString(parameters, "CLASSES", context) or "")
        except ValueError as error:
            raise QgsProcessingException(str(error)) from error

    def processAlgorithm(self, parameters, context, feedback) -> Dict[str, object]:
        images = _raster_paths(self.parameterAsLayerList(parameters, "INPUT", context))
        source = self.parameterAsSource(parameters, "LABELS", context)
        field = self.parameterAsString(parameters, "CLASS_FIELD", context)
        classes = self._classes(parameters, context)
        folder = tempfile.mkdtemp(prefix="jess-geo-labels-")
        try:
            labels = os.path.join(folder, "labels.gpkg")
            try:
                count = export_features(source.getFeatures(), source.fields(), source.sourceCrs(),
                                        source.sourceName(), field, labels, classes)
            except ValueError as error:
                raise QgsProcessingException(str(error)) from error
            feedback.pushInfo(f"{count} labelled polygons")
            request = TrainRequest(images=images, labels_path=labels, classes=classes, **_common(self, parameters, context))
            return _run(request, feedback)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


class AdaptAlgorithm(QgsProcessingAlgorithm):
    """``jessgeo:adapt``: base model + its source data + an unlabelled layer -> an adapted model."""

    def name(self) -> str:
        return "adapt"

    def displayName(self) -> str:
        return "Adapt a model to a layer"

    def shortHelpString(self) -> str:
        return ADAPT_HELP

    def createInstance(self) -> "AdaptAlgorithm":
        return AdaptAlgorithm()

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Layer to adapt to (unlabelled)"))
        self.addParameter(QgsProcessingParameterFile("BASE_MODEL", "Base model", fileFilter=MODEL_FILTER))
        self.addParameter(QgsProcessingParameterFile(
            "SOURCE_IMAGES", "The base model's source images (folder)", behavior=QgsProcessingParameterFile.Folder))
        self.addParameter(QgsProcessingParameterFile(
            "SOURCE_LABELS", "Their labels (folder)", behavior=QgsProcessingParameterFile.Folder))
        _add_common(self)
        self.addOutput(QgsProcessingOutputNumber("SOURCE_ENERGY_BEFORE", "Base model's mean free energy on the source data"))
        self.addOutput(QgsProcessingOutputNumber("TARGET_ENERGY_BEFORE", "Base model's mean free energy on the target layer"))
        self.addOutput(QgsProcessingOutputNumber("GAP_BEFORE", "Energy gap (target - source) of the base model"))
        self.addOutput(QgsProcessingOutputNumber("GAP_AFTER", "Energy gap (target - source) of the adapted model"))

    def processAlgorithm(self, parameters, context, feedback) -> Dict[str, object]:
        target = _raster_paths([self.parameterAsRasterLayer(parameters, "INPUT", context)])
        request = TrainRequest(
            base_model=self.parameterAsFile(parameters, "BASE_MODEL", context),
            images_dir=self.parameterAsFile(parameters, "SOURCE_IMAGES", context),
            masks_dir=self.parameterAsFile(parameters, "SOURCE_LABELS", context),
            targets=target, **_common(self, parameters, context))
        results = _run(request, feedback)
        if results:
            # The adapted model becomes the current one of the "Segment with jess-geo" dialog.
            settings.remember_model(str(results["OUTPUT_MODEL"]))
            feedback.pushInfo(f"The segment dialog now uses {results['OUTPUT_MODEL']}.")
        return results
