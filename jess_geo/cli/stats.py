"""`jess-geo stats`: cover, landscape metrics and class adjacency, per zone or for the whole raster."""

from __future__ import annotations

import json
from pathlib import Path

import click

HELP = """Measure CLASSES (a class GeoTIFF or PNG written by `jess-geo predict`).

\b
Per zone (--zones, one polygon per plot) or for the whole raster, per class:
pixels, area (m², geodesic in a geographic CRS; px² for photos), percent of the
valid area, patches (count, mean and largest area), edge density (m/ha; photos:
px per 10,000 px²) and the aggregation index, plus the class adjacency matrix
(shared edge length and the share of each class's edges facing each class).
A pixel belongs to a zone when its centre is inside it. Zones partly outside the
raster or on nodata are reported so (status, outside_fraction, nodata_fraction).

\b
Outputs (default stem: <CLASSES stem>_stats, or -o STEM):
  STEM.csv            one row per zone and class
  STEM_adjacency.csv  one row per zone and pair of classes
  STEM.json           everything, with the adjacency matrices
  STEM.gpkg           with --zones: the zones with pct_<class>, m2_<class> fields
Existing outputs are kept unless --overwrite.
"""


@click.command("stats", help=HELP)
@click.argument("classes_tif", type=click.Path(path_type=Path))
@click.option("--zones", type=click.Path(path_type=Path), default=None, help="Polygons (GeoPackage, shapefile...) to measure in.")
@click.option("--zone-field", default=None, help="Field that names each zone (default: feature number).")
@click.option("--zone-layer", default=None, help="Layer of the zones file (default: its first layer).")
@click.option("--classes", "classes_path", type=click.Path(path_type=Path), default=None,
              help="Class table for a raster that carries none (JSON or YAML).")
@click.option("--connectivity", type=click.Choice(["4", "8"]), default="8", show_default=True,
              help="Pixel neighbourhood of a patch (8 = FRAGSTATS's default).")
@click.option("-o", "--output", "stem", type=click.Path(path_type=Path), default=None, help="Output stem (no suffix).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON line instead of a table.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
def command(classes_tif: Path, zones: Path | None, zone_field: str | None, zone_layer: str | None,
            classes_path: Path | None, connectivity: str, stem: Path | None, overwrite: bool, as_json: bool,
            quiet: bool) -> None:
    from jess_geo.errors import InputError
    from jess_geo.measure.grid import open_class_raster
    from jess_geo.measure.outputs import check_outputs, output_paths, progress_reporter, write_csv, write_frame, write_json
    from jess_geo.measure.stats import summary_columns, zone_stats
    from jess_geo.measure.tables import adjacency_rows, format_stats, stats_rows
    from jess_geo.measure.zones import read_zones

    if zone_field is not None and zones is None:
        raise InputError("--zone-field names a field of --zones; pass --zones too.")
    stem = stem or classes_tif.with_name(classes_tif.stem + "_stats")
    with open_class_raster(classes_tif, classes_path) as (src, grid):
        z = read_zones(zones, zone_field, grid, zone_layer) if zones is not None else None
        paths = output_paths(stem, [".csv", "_adjacency.csv", ".json"] + ([".gpkg"] if z is not None else []))
        check_outputs(paths.values(), overwrite, [classes_tif] + ([zones] if zones else []))
        if z is not None and z.notice and not quiet and not as_json:
            click.echo(f"notice: {z.notice}", err=True)
        reporter = progress_reporter(as_json, quiet)
        results = zone_stats(src, grid, z, connectivity=int(connectivity), progress=reporter)
        reporter.close()
    unit = grid.area_unit
    doc = {"source": str(classes_tif), "zones": str(zones) if zones else None, "zone_field": zone_field,
           "area_unit": unit, "connectivity": int(connectivity), "classes": grid.classes, "results": results}
    write_csv(paths[".csv"], *stats_rows(results, unit))
    write_csv(paths["_adjacency.csv"], *adjacency_rows(results, unit))
    write_json(paths[".json"], doc)
    if z is not None:
        frame = z.frame.copy()
        for name, values in summary_columns(results, grid).items():
            frame[name] = values
        write_frame(paths[".gpkg"], frame, "zones_cover")
    if as_json:
        click.echo(json.dumps({"stage": "done", "outputs": {k: str(v) for k, v in paths.items()}, "area_unit": unit,
                               "results": [{k: r[k] for k in ("zone", "status", "valid_area", "nodata_fraction", "outside_fraction")}
                                           for r in results]}))
    elif not quiet:
        click.echo(format_stats(results, unit))
        for p in paths.values():
            click.echo(f"  {p}")
