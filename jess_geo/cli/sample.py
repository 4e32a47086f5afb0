"""`jess-geo sample`: a stratified random sample of points to label, for `jess-geo assess`."""

from __future__ import annotations

import json
from pathlib import Path

import click

HELP = """Draw a stratified random sample of N points from CLASSES (strata = map classes).

\b
Writes a GeoPackage with the point layer "samples" (fields sample_id, map_class,
map_name, row, col and an empty integer field "class" to fill in with the reference
class id, e.g. in QGIS) and the table "sample_design" (pixels, area, weight and
sample size of each stratum, allocation, seed, source), which `jess-geo assess`
uses for the stratum weights. Points are pixel centres.

\b
--allocation proportional: sample sizes follow the mapped share of each class;
equal: the same number per class. --min-per-class raises small strata (Olofsson
et al. 2014 suggest about 50 per class when rare classes matter).
"""


@click.command("sample", help=HELP)
@click.argument("classes_tif", type=click.Path(path_type=Path))
@click.option("--n", "n", type=int, required=True, help="Number of sample points in all.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="GeoPackage to write.")
@click.option("--allocation", type=click.Choice(["proportional", "equal"]), default="proportional", show_default=True)
@click.option("--min-per-class", type=int, default=0, show_default=True, help="At least this many points in every class present.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--classes", "classes_path", type=click.Path(path_type=Path), default=None,
              help="Class table for a raster that carries none (JSON or YAML).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--json", "as_json", is_flag=True, help="Print the design as one JSON line.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
def command(classes_tif: Path, n: int, output: Path, allocation: str, min_per_class: int, seed: int,
            classes_path: Path | None, overwrite: bool, as_json: bool, quiet: bool) -> None:
    from jess_geo.errors import InputError, OutputError
    from jess_geo.measure.grid import open_class_raster
    from jess_geo.measure.outputs import check_outputs
    from jess_geo.measure.sampling import allocate, class_totals, design_rows, draw_ranks, locate, write_sample

    if output.suffix.lower() != ".gpkg":
        raise OutputError(f"Sample output {output} must be a GeoPackage (.gpkg) so it can carry the sampling design; name it .gpkg.")
    if min_per_class < 0:
        raise InputError(f"--min-per-class {min_per_class} is negative; pass 0 or more.")
    with open_class_raster(classes_tif, classes_path) as (src, grid):
        check_outputs([output], overwrite, [classes_tif])
        pixels, area = class_totals(src, grid)
        sizes = allocate(pixels, n, allocation, min_per_class)
        rows, cols, kidx = locate(src, grid, draw_ranks(pixels, sizes, seed))
    design = design_rows(grid, pixels, area, sizes, allocation=allocation, seed=seed, source=str(classes_tif))
    write_sample(output, grid, rows, cols, kidx, design)
    if as_json:
        click.echo(json.dumps({"stage": "done", "outputs": {"sample": str(output)}, "points": int(len(rows)), "design": design}))
    elif not quiet:
        click.echo(f"{len(rows)} points ({allocation} allocation, seed {seed}) -> {output}")
        for name, p, s in zip(grid.names, pixels, sizes):
            click.echo(f"  {name:<24} {int(p):>12d} px  {int(s):>5d} points")
