"""Classify one scene tile by tile into class / probability / energy GeoTIFFs, polygons, cover.

The layers, each in its own module: :mod:`.outputs` (every output path, checked),
:mod:`.prepare` (options, guards, bands, tile plan), :mod:`.runtime` (the network behind one
interface), :mod:`.reader` / :mod:`.blend` / :mod:`.finish` / :mod:`.pipeline` (the threaded,
flat-memory run), :mod:`.products` (temporary files, polygons, cover, the final renames).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from jess_geo.inference.outputs import plan_outputs, check_outputs
from jess_geo.inference.prepare import Options, prepare_scene
from jess_geo.progress import ProgressCallback

if TYPE_CHECKING:
    from jess_geo.models.modelfile import LoadedModel

__all__ = ["predict_raster", "model_metadata"]


def model_metadata(model: "str | Path | LoadedModel") -> tuple[dict[str, Any], str]:
    """``(metadata, name for messages)`` of a model file or a loaded model, without building a network."""
    if isinstance(model, (str, Path)):
        from jess_geo.models.modelfile import read_metadata

        return read_metadata(model), Path(model).name
    return model.metadata, str(model.metadata.get("name", "in-memory model"))


def predict_raster(scene: str | Path, model: "str | Path | LoadedModel", out_classes: str | Path, *,
                   vector: str | Path | None = None, vector_layer: str = "classes",
                   probabilities: str | Path | None = None, energy: str | Path | None = None,
                   cover: bool = True, progress: ProgressCallback | None = None,
                   cancel: Callable[[], bool] | None = None, notice: Callable[[str], None] | None = None,
                   **options: Any) -> dict[str, Any]:
    """Classify ``scene`` with ``model`` and write ``out_classes`` (and the other outputs named).

    Args:
        scene: any raster GDAL opens (GeoTIFF, PNG/JPEG photo, VRT, ``/vsizip/``, ``/vsicurl/``).
        model: model file (``.pt``, or ``.onnx`` where an ONNX runtime is installed) or a LoadedModel.
        out_classes: class GeoTIFF (uint8, nodata 255, colour table); ``.tif`` or ``.tiff``.
        vector, vector_layer: polygon file (format from the extension) and its layer; None: none.
        probabilities, energy: per-class probability / free-energy GeoTIFFs; None: none.
        cover: write ``<base>_cover.csv`` / ``.json`` beside the class raster.
        progress, cancel, notice: ``progress(stage, done, total, message)``; ``cancel()`` polled
            once per batch (True stops, nothing is left); ``notice(text)`` gets the plan and notices.
        **options: the fields of :class:`~jess_geo.inference.prepare.Options` (``tile_size``,
            ``overlap``, ``batch_size``, ``bands``, ``allow_resolution_mismatch``, ``device``,
            ``runtime``, ``cog``, ``overwrite``, ``min_area``, ``simplify``, ``area``: an
            :class:`~jess_geo.io.aoi.AreaSpec` from ``read_aoi`` / ``bbox_area`` to classify only
            that area; the outputs then cover its window, nodata outside it).

    Returns:
        ``{"scene", "model", "outputs", "classes", "cover", "tiles", "tiles_run", "seconds",
        "device", "runtime", "notices", "vector_summary", ...}``.

    Raises:
        InputError, ModelFileError, OutputError (all before any work), Cancelled.
    """
    from jess_geo.inference.products import write_scene
    from jess_geo.inference.runtime import open_runtime

    opts = Options(**options)
    opts.check()
    meta, name = model_metadata(model)
    outputs = plan_outputs(scene, output=out_classes, vector=vector, probabilities=probabilities,
                           energy=energy, cover=cover, layer=vector_layer)
    prep = prepare_scene(scene, meta, outputs, opts, name)
    inputs = ([model] if isinstance(model, (str, Path)) else []) + ([opts.area.source] if opts.area is not None and opts.area.source else [])
    check_outputs([outputs], inputs=inputs, overwrite=opts.overwrite)
    say = notice or (lambda _text: None)
    for text in (prep.plan_text(), *prep.notices):
        say(text)
    rt = open_runtime(model, opts.runtime, opts.device, metadata=meta, batch=opts.batch_size, streams=opts.streams)
    result = write_scene(prep, rt, opts, model_name=name, progress=progress, cancel=cancel)
    if result["cover"]["valid_pixels"] == 0:
        say(f"{prep.job.info.name} has no valid pixel (all nodata); wrote empty outputs (every pixel nodata).")
    return result
