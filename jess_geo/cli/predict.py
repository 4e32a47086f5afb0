"""`jess-geo predict`: classify scenes tile by tile into class GeoTIFFs, polygons and cover tables."""

from __future__ import annotations

from pathlib import Path

import click

from jess_geo.errors import InputError, ModelFileError
from jess_geo.io.atomic import check_output
from jess_geo.progress import Reporter

HELP = """Classify SCENE(s) (GeoTIFF, or a PNG/JPEG photo) with a jess-geo model.

\b
Outputs, beside each scene unless named:
  <stem>_classes.tif   class raster: uint8, the scene's CRS/transform/size, nodata 255,
                       colour table and class names embedded (--cog: Cloud-Optimized)
  <stem>_classes.gpkg  one polygon per class region (--no-vector to skip)
  <stem>_cover.csv/.json  pixels, area and percent of the valid area per class
--probabilities FILE (uint8 per class, p x 254, nodata 255) and --energy FILE
(float32 free energy -logsumexp(logits), nodata NaN) on request.

\b
Nodata (nodata value, alpha band, internal mask) is nodata in every output and is
never classified. A scene without any valid pixel is not an error: it gives a notice
and valid outputs in which every pixel is nodata (empty polygons, zero cover).
Photos without georeferencing get the same outputs in pixel units (no CRS, areas in
px², transform x = column, y = -row).

\b
Existing outputs are kept unless --overwrite. Outputs are written under temporary
names and renamed when complete: Ctrl-C or SIGTERM leaves no partial file.
Tile size and overlap are in pixels at the model's working resolution (defaults from
the model file); a tile size the network cannot take is rounded to a multiple of 32
with a notice.
"""


@click.command("predict", help=HELP)
@click.argument("scenes", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", "-m", "model", type=click.Path(path_type=Path), default=None,
              help="Model file (default: the demo model shipped with jess-geo).")
@click.option("-o", "--output", "output", type=click.Path(path_type=Path), default=None,
              help="Class GeoTIFF to write (one scene only; default <stem>_classes.tif).")
@click.option("--vector", "vector", type=click.Path(path_type=Path), default=None,
              help="GeoPackage of polygons (one scene only; default beside the class raster, .gpkg).")
@click.option("--no-vector", is_flag=True, help="Do not write polygons.")
@click.option("--probabilities", type=click.Path(path_type=Path), default=None, help="Also write per-class probabilities here (one scene only).")
@click.option("--energy", type=click.Path(path_type=Path), default=None, help="Also write the per-pixel free energy here (one scene only).")
@click.option("--tile-size", type=int, default=None, help="Tile size in working pixels (default from the model).")
@click.option("--overlap", type=int, default=None, help="Tile overlap in working pixels (default from the model).")
@click.option("--batch-size", type=int, default=4, show_default=True, help="Tiles per network call.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
              help="auto uses a CUDA or Apple GPU when present.")
@click.option("--min-area", type=float, default=0.0, show_default=True, help="Drop polygons smaller than this (m², px² for photos).")
@click.option("--simplify", type=float, default=0.0, show_default=True, help="Topology-preserving simplification tolerance (CRS units).")
@click.option("--cog", is_flag=True, help="Write Cloud-Optimized GeoTIFFs with overviews.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--json-progress", is_flag=True, help="Print progress as one JSON object per line on stdout (for programs).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no cover table.")
def command(scenes: tuple[Path, ...], model: Path | None, output: Path | None, vector: Path | None, no_vector: bool,
            probabilities: Path | None, energy: Path | None, tile_size: int | None, overlap: int | None,
            batch_size: int, device: str, min_area: float, simplify: float, cog: bool, overwrite: bool,
            json_progress: bool, quiet: bool) -> None:
    from jess_geo.inference.predict import cover_paths, default_outputs, predict_raster
    from jess_geo.cover import format_cover
    from jess_geo.io.raster import inspect_raster
    from jess_geo.models.modelfile import bundled_demo_model, read_metadata

    if len(scenes) > 1 and any(x is not None for x in (output, vector, probabilities, energy)):
        raise InputError("-o, --vector, --probabilities and --energy name one file each; predict one scene at a time when naming outputs.")
    if vector is not None and no_vector:
        raise InputError("--vector and --no-vector contradict each other; pass only one of them.")
    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size} is not positive; pass 1 or more.")
    if model is None:
        model = bundled_demo_model()
        if not model.is_file():
            raise ModelFileError("The demo model is not installed with this jess-geo; pass --model with a file written by `jess-geo train`.")
    read_metadata(model)  # a corrupt or foreign model file fails here, before anything is written

    reporter = Reporter("json" if json_progress else "quiet" if quiet else "bar")
    plans = []
    for scene in scenes:
        inspect_raster(scene)  # missing or unreadable scenes fail before anything is written
        out = output or default_outputs(scene)["classes"]
        vec = None if no_vector else (vector or out.with_suffix(".gpkg"))
        csv_path, json_path = cover_paths(out)
        for p in (out, vec, probabilities, energy, csv_path, json_path):
            if p is not None:
                check_output(p, overwrite=overwrite, inputs=[scene, model])
        plans.append((scene, out, vec))

    for scene, out, vec in plans:
        result = predict_raster(
            scene, model, out, vector=vec, probabilities=probabilities, energy=energy, tile_size=tile_size,
            overlap=overlap, batch_size=batch_size, device=device, cog=cog, overwrite=overwrite,
            min_area=min_area, simplify=simplify, progress=reporter, notice=reporter.message,
        )
        reporter.close()
        if json_progress:
            reporter.emit({"stage": "done", "percent": 100.0, "scene": str(scene), "outputs": result["outputs"],
                           "classes": result["classes"], "cover": result["cover"]})
        elif not quiet:
            click.echo(f"{scene}: {result['tiles']} tiles in {result['seconds']:.1f} s on {result['device']}")
            click.echo(format_cover(result["cover"]))
            for key, path in result["outputs"].items():
                if path:
                    click.echo(f"  {key:<13} {path}")
