"""`jess-geo predict`: classify scenes tile by tile into class GeoTIFFs, polygons and cover tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from jess_geo.errors import Cancelled, InputError, JessGeoError, ModelFileError
from jess_geo.progress import STOP, Reporter

HELP = """Classify SCENE(s) (GeoTIFF, a PNG/JPEG photo, a VRT, or any path GDAL opens such as
/vsizip/archive.zip/scene.tif or /vsicurl/https://host/cog.tif) with a jess-geo model.

\b
Outputs, beside each scene unless named:
  <stem>_classes.tif   class raster: uint8, the scene's CRS/transform/size, nodata 255,
                       colour table and class names embedded (--cog: Cloud-Optimized)
  <stem>_classes.gpkg  one polygon per class region (--no-vector to skip; --vector picks
                       the format by extension: .gpkg, .fgb, .geojson, .shp)
  <stem>_cover.csv/.json  pixels, area and percent of the valid area per class
--probabilities FILE (uint8 per class, p x 254, nodata 255) and --energy FILE
(float32 free energy -logsumexp(logits), nodata NaN) on request.

\b
Before any work every scene and output is checked: a scene whose pixel size is more
than 8x off the model's working resolution is refused (--allow-resolution-mismatch
runs it anyway), outputs that exist are kept unless --overwrite, and --dry-run prints
the plan (--json: one JSON line per scene) and writes nothing. Nodata (nodata value,
alpha band, internal mask, NaN/inf) is nodata in every output and never classified.
--aoi FILE (polygons, any CRS) or --bbox classifies only that area: the outputs cover
its bounding window (whole pixels, with the tiles' overlap as context) and are nodata
outside the area.
Outputs are written under temporary names and renamed when complete: Ctrl-C or
SIGTERM leaves no partial file. With several scenes a failing scene does not stop the
others (--fail-fast does); the exit code is 0 only when every scene succeeded.
"""


def _bands(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a list of band numbers such as 3,2,1.") from None


@click.command("predict", help=HELP)
@click.argument("scenes", nargs=-1, required=True, type=str)
@click.option("--model", "-m", "model", type=click.Path(path_type=Path), default=None,
              help="Model file (default: the demo model shipped with jess-geo).")
@click.option("-o", "--output", "output", type=click.Path(path_type=Path), default=None,
              help="Class GeoTIFF to write, .tif or .tiff (one scene only; default <stem>_classes.tif).")
@click.option("--vector", "vector", type=click.Path(path_type=Path), default=None,
              help="Polygon file, format by extension (one scene only; default beside the class raster, .gpkg).")
@click.option("--no-vector", is_flag=True, help="Do not write polygons.")
@click.option("--layer", default="classes", show_default=True, help="Layer name of the polygons (other layers of a GeoPackage are kept).")
@click.option("--probabilities", type=click.Path(path_type=Path), default=None, help="Also write per-class probabilities here (one scene only).")
@click.option("--energy", type=click.Path(path_type=Path), default=None, help="Also write the per-pixel free energy here (one scene only).")
@click.option("--tile-size", type=int, default=None, help="Tile size in working pixels (default from the model).")
@click.option("--overlap", type=int, default=None, help="Tile overlap in working pixels (default from the model).")
@click.option("--batch-size", type=int, default=4, show_default=True, help="Tiles per network call.")
@click.option("--streams", type=int, default=None,
              help="Concurrent network runs per batch, onnxruntime/openvino only (default: onnxruntime one per core up to the batch, openvino 1).")
@click.option("--bands", callback=_bands, default=None, help="Scene bands for the model's inputs, e.g. 3,2,1 (default: the model's bands).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
              help="auto uses a CUDA or Apple GPU when present.")
@click.option("--runtime", type=click.Choice(["torch", "onnxruntime", "openvino"]), default=None,
              help="Network runtime (default: torch for .pt, onnxruntime for .onnx models).")
@click.option("--tta", type=click.Choice(["none", "flips", "d4"]), default="none", show_default=True,
              help="Test-time augmentation: average each tile's logits over its flips (4 network runs per tile) "
                   "or the eight rotations and flips (d4: 8 runs); slower, often smoother maps.")
@click.option("--allow-resolution-mismatch", is_flag=True, help="Run scenes more than 8x finer or coarser than the model's resolution.")
@click.option("--min-area", type=float, default=0.0, show_default=True,
              help="Merge polygons smaller than this (m², px² for photos) into their largest neighbour.")
@click.option("--simplify", type=float, default=0.0, show_default=True, help="Topology-preserving simplification tolerance (CRS units).")
@click.option("--cog", is_flag=True, help="Write Cloud-Optimized GeoTIFFs with overviews.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (of a GeoPackage: only --layer).")
@click.option("--dry-run", is_flag=True, help="Check everything and print the plan; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: one JSON line per scene.")
@click.option("--json-progress", is_flag=True, help="Print the plan, progress and results as JSON lines on stdout (for programs).")
@click.option("--fail-fast", is_flag=True, help="Stop at the first scene that fails.")
@click.option("--output-dir", type=click.Path(path_type=Path), default=None,
              help="Batch: write <stem>_classes.tif ... and predict_summary.csv/.json here; skips scenes already done.")
@click.option("--workers", type=int, default=None, help="Batch on a Dask LocalCluster of N worker processes (pip install 'jess-geo[dask]').")
@click.option("--scheduler", default=None, help="Batch on a running Dask cluster, e.g. tcp://HOST:8786.")
@click.option("--threads-per-worker", type=int, default=None, help="Torch threads per worker (default: cores / workers).")
@click.option("--block-size", type=int, default=None, help="Predict each scene in blocks of PX x PX pixels as separate tasks.")
@click.option("--aoi", type=click.Path(path_type=Path), default=None,
              help="Predict only inside the polygons of this vector file (any CRS); outputs cover their bounding window, nodata outside.")
@click.option("--aoi-layer", default=None, help="Layer of --aoi to use (needed when the file has several).")
@click.option("--bbox", type=float, nargs=4, default=None, metavar="XMIN YMIN XMAX YMAX",
              help="Predict only inside this box (scene CRS, or --bbox-crs; a photo: pixel x = column, y = -row).")
@click.option("--bbox-crs", default=None, help="CRS of --bbox, e.g. EPSG:4326 (default: the scene's).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no cover table.")
def command(scenes: tuple[str, ...], model: Path | None, output: Path | None, vector: Path | None, no_vector: bool,
            layer: str, probabilities: Path | None, energy: Path | None, dry_run: bool, as_json: bool,
            json_progress: bool, fail_fast: bool, quiet: bool, **options: Any) -> None:
    from jess_geo.inference.outputs import AUTO, check_outputs, plan_outputs
    from jess_geo.inference.prepare import Options

    batch = {k: options.pop(k) for k in ("output_dir", "workers", "scheduler", "threads_per_worker", "block_size")}
    area = _area(*(options.pop(k) for k in ("aoi", "aoi_layer", "bbox", "bbox_crs")))
    if any(v is not None for v in batch.values()):  # the batch form (issue 14): jess_geo.cli.batch
        if area is not None:
            raise InputError("--aoi and --bbox work without --output-dir/--workers/--scheduler/--block-size; predict the scene on its own.")
        from jess_geo.cli.batch import run_batch_command

        named = {"output": output, "vector": vector, "probabilities": probabilities, "energy": energy, "dry_run": dry_run}
        return run_batch_command(scenes, _model_path(model), no_vector=no_vector, layer=layer, json_progress=json_progress,
                                 quiet=quiet, fail_fast=fail_fast, named=named, **batch, **options)
    if len(scenes) > 1 and any(x is not None for x in (output, vector, probabilities, energy)):
        raise InputError("-o, --vector, --probabilities and --energy name one file each; predict one scene at a time when naming outputs.")
    if vector is not None and no_vector:
        raise InputError("--vector and --no-vector contradict each other; pass only one of them.")
    if as_json and not dry_run:
        raise InputError("--json prints the plan of --dry-run; for a run use --json-progress.")
    opts = Options(**options, area=area)
    opts.check()
    model = _model_path(model)
    outs = [plan_outputs(s, output=output, vector=None if no_vector else (vector or AUTO), probabilities=probabilities,
                         energy=energy, layer=layer) for s in scenes]
    preps = _prepare(scenes, outs, opts, model)
    check_outputs(outs, inputs=[model, *([area.source] if area is not None and area.source else [])], overwrite=opts.overwrite)
    if dry_run:
        _print_plans(preps, as_json)
        return
    reporter = Reporter("json" if json_progress else "quiet" if quiet else "bar")
    _run_all(preps, model, opts, reporter, fail_fast, json_progress, quiet)


def _area(aoi: Path | None, layer: str | None, bbox: tuple[float, ...] | None, crs: str | None) -> Any:
    """The area of --aoi / --bbox (an AreaSpec), None for the whole scene; contradictions refused."""
    from jess_geo.io.aoi import bbox_area, read_aoi

    if aoi is not None and bbox is not None:
        raise InputError("--aoi and --bbox both give an area; pass only one of them.")
    if layer is not None and aoi is None:
        raise InputError("--aoi-layer names a layer of --aoi; pass --aoi FILE too.")
    if crs is not None and bbox is None:
        raise InputError("--bbox-crs gives the CRS of --bbox; pass --bbox XMIN YMIN XMAX YMAX too.")
    if aoi is not None:
        return read_aoi(aoi, layer)
    return bbox_area(*bbox, crs=crs) if bbox is not None else None


def _model_path(model: Path | None) -> Path:
    from jess_geo.models.modelfile import bundled_demo_model

    if model is None:
        model = bundled_demo_model()
        if not model.is_file():
            raise ModelFileError("The demo model is not installed with this jess-geo; pass --model with a file written by `jess-geo train`.")
    return model


def _prepare(scenes: tuple[str, ...], outs: list[Any], opts: Any, model: Path) -> list[Any]:
    """Every scene checked before any work: one line per bad scene, then a refusal."""
    from jess_geo.inference.predict import model_metadata
    from jess_geo.inference.prepare import prepare_scene

    meta, name = model_metadata(model)  # a corrupt or foreign model file fails here
    preps, problems = [], []
    for scene, out in zip(scenes, outs):
        try:
            preps.append(prepare_scene(scene, meta, out, opts, name))
        except JessGeoError as exc:
            if len(scenes) == 1:
                raise
            problems.append(f"{scene}: {exc}")
    if problems:
        for line in problems[:-1]:
            click.echo(f"jess-geo: error: {line}", err=True)
        raise InputError(f"{problems[-1]} ({len(problems)} of {len(scenes)} scenes cannot be read as given; nothing was written)")
    return preps


def _print_plans(preps: list[Any], as_json: bool) -> None:
    for prep in preps:
        if as_json:
            click.echo(json.dumps(prep.plan_json()))
            continue
        click.echo(prep.plan_text())
        for text in prep.notices:
            click.echo(f"  notice: {text}")
        for key, path in prep.outputs.files().items():
            click.echo(f"  {key:<13} {path}" + (f" (layer {prep.outputs.vector_layer})" if key == "vector" else ""))


def _run_all(preps: list[Any], model: Path, opts: Any, reporter: Reporter, fail_fast: bool,
             json_progress: bool, quiet: bool) -> None:
    from jess_geo.inference.products import write_scene
    from jess_geo.inference.runtime import open_runtime

    rt = open_runtime(model, opts.runtime, opts.device, batch=opts.batch_size, streams=opts.streams)
    failed: list[str] = []
    STOP.arm()
    try:
        for prep in preps:
            if json_progress:
                reporter.emit(prep.plan_json())
            reporter.message(prep.plan_text())  # the plan: bar and JSON modes (not --quiet)
            for text in prep.notices:  # notices are warnings: shown under --quiet too
                reporter.message(text) if reporter.mode != "quiet" else click.echo(text, err=True)
            try:
                result = write_scene(prep, rt, opts, model_name=model.name, progress=reporter, cancel=STOP)
            except Cancelled:
                raise Cancelled(f"Stopped by {STOP.reason or 'a stop request'}; outputs were not written "
                                "(partial files removed).") from None
            except JessGeoError as exc:
                if len(preps) == 1 or fail_fast:
                    raise
                failed.append(f"{prep.outputs.scene}: {exc}")
                _report_failure(failed[-1], json_progress)
                continue
            finally:
                reporter.close()
            _show(result, reporter, json_progress, quiet)
    except BaseException:
        STOP.disarm()
        raise
    STOP.finish()  # every output is committed: a signal from now on must not say "not written"
    if failed:
        raise JessGeoError(f"{len(failed)} of {len(preps)} scenes failed (listed above); the others were written.")


def _report_failure(line: str, json_progress: bool) -> None:
    if json_progress:
        click.echo(json.dumps({"stage": "error", "error": line}))
    click.echo(f"jess-geo: error: {line}", err=True)


def _show(result: dict[str, Any], reporter: Reporter, json_progress: bool, quiet: bool) -> None:
    from jess_geo.cover import format_cover

    if result["cover"]["valid_pixels"] == 0:
        reporter.message(f"{result['scene']} has no valid pixel (all nodata); wrote empty outputs (every pixel nodata).")
    if (result.get("shift") or {}).get("notice"):  # the scene looks unlike the training data (jess_geo.shift.watch)
        click.echo(f"notice: {result['shift']['notice']}", err=True)
    if json_progress:
        reporter.emit({"stage": "done", "percent": 100.0, "scene": result["scene"], "outputs": result["outputs"],
                       "classes": result["classes"], "cover": result["cover"],
                       "tiles": result["tiles"], "tiles_run": result["tiles_run"],
                       **({"notice": result["shift"]["notice"]} if (result.get("shift") or {}).get("notice") else {})})
    elif not quiet:
        tta = f", test-time augmentation {result['tta']}" if result.get("tta", "none") != "none" else ""
        click.echo(f"{result['scene']}: {result['tiles']} tiles in {result['seconds']:.1f} s on {result['device']} ({result['runtime']}){tta}")
        click.echo(format_cover(result["cover"]))
        for key, path in result["outputs"].items():
            if path:
                click.echo(f"  {key:<13} {path}")
