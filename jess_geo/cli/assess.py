"""`jess-geo assess`: accuracy and error-adjusted area from labelled reference samples."""

from __future__ import annotations

import json
from pathlib import Path

import click

HELP = """Assess CLASSES against reference samples (points, or small polygons) labelled by a person.

\b
The map classes are the strata (Olofsson et al. 2014): the error matrix in sample
counts and in estimated area proportions, overall, user's and producer's accuracy
with 95 % confidence intervals, and the error-adjusted area of each class with its
95 % confidence interval. Stratum weights come from the design that `jess-geo
sample` stored in the GeoPackage, else from the map's class areas.
Labels (--field) are class ids or class names of the map. Units outside the raster,
on nodata or without a label are counted and reported, not used.

\b
Outputs (default stem: <REFERENCE stem>_assess, or -o STEM):
  STEM.csv  per class: map and adjusted area and percent, CIs, accuracies
  STEM_confusion.csv  the error matrix (counts, then area proportions)
  STEM.json  everything
"""


@click.command("assess", help=HELP)
@click.argument("classes_tif", type=click.Path(path_type=Path))
@click.option("--reference", type=click.Path(path_type=Path), required=True, help="Labelled samples (GeoPackage).")
@click.option("--field", default="class", show_default=True, help="Field with the reference class (id or name).")
@click.option("--layer", default=None, help="Layer of the reference file (default: samples, else the first).")
@click.option("--classes", "classes_path", type=click.Path(path_type=Path), default=None,
              help="Class table for a raster that carries none (JSON or YAML).")
@click.option("-o", "--output", "stem", type=click.Path(path_type=Path), default=None, help="Output stem (no suffix).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON line.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
def command(classes_tif: Path, reference: Path, field: str, layer: str | None, classes_path: Path | None,
            stem: Path | None, overwrite: bool, as_json: bool, quiet: bool) -> None:
    from jess_geo.errors import InputError
    from jess_geo.measure.assess import assess
    from jess_geo.measure.grid import open_class_raster
    from jess_geo.measure.outputs import check_outputs, output_paths, write_csv, write_json
    from jess_geo.measure.tables import assess_rows, confusion_rows, format_assess

    stem = stem or reference.with_name(reference.stem + "_assess")
    paths = output_paths(stem, [".csv", "_confusion.csv", ".json"])
    with open_class_raster(classes_tif, classes_path) as (src, grid):
        check_outputs(paths.values(), overwrite, [classes_tif, reference])
        result = assess(src, grid, reference, field, layer)
    if result["units"]["used"] == 0:
        raise InputError(f"None of the {result['units']['total']} reference units in {reference} is labelled and on a valid map pixel; "
                         f"label the field {field!r} or check that the samples lie on the map.")
    result["map"] = str(classes_tif)
    write_csv(paths[".csv"], *assess_rows(result))
    write_csv(paths["_confusion.csv"], *confusion_rows(result))
    write_json(paths[".json"], result)
    if as_json:
        click.echo(json.dumps({"stage": "done", "outputs": {k: str(v) for k, v in paths.items()}, "units": result["units"],
                               "overall_accuracy": result["overall_accuracy"]}))
    elif not quiet:
        click.echo(format_assess(result))
        for p in paths.values():
            click.echo(f"  {p}")
