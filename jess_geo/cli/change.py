"""`jess-geo change`: from-to transitions between two class rasters of one place."""

from __future__ import annotations

import json
from pathlib import Path

import click

HELP = """Compare BEFORE and AFTER class rasters (e.g. two surveys, or two models).

\b
AFTER is read on BEFORE's grid: as is when size, transform and CRS agree, else
resampled onto it with nearest neighbour (with a notice). The class tables must
agree, or --mapping FILE.json maps each AFTER class id to a BEFORE class id
({"<after id>": <before id>}). Areas in m² (geodesic in a geographic CRS), px²
for photos; only pixels with a class on both dates count.

\b
Outputs (default stem: <BEFORE stem>_to_<AFTER stem> beside BEFORE, or -o STEM):
  STEM_transitions.csv  from, to, pixels, area (every pair)
  STEM_classes.csv      per class: before, after, gain, loss, net, persistence
  STEM.json             all of it (matrices in pixels and area)
  STEM.tif              change raster: one value per from-to pair, colours, names
  STEM.gpkg             polygons of changed pixels: from_class, to_class, area
  STEM.png              chart of the transitions
  STEM_zones.csv        with --zones: from, to, pixels, area per zone
Existing outputs are kept unless --overwrite.
"""


@click.command("change", help=HELP)
@click.argument("before", type=click.Path(path_type=Path))
@click.argument("after", type=click.Path(path_type=Path))
@click.option("--mapping", type=click.Path(path_type=Path), default=None, help="JSON mapping AFTER class ids to BEFORE class ids.")
@click.option("--zones", type=click.Path(path_type=Path), default=None, help="Polygons to report transitions in.")
@click.option("--zone-field", default=None, help="Field that names each zone (default: feature number).")
@click.option("-o", "--output", "stem", type=click.Path(path_type=Path), default=None, help="Output stem (no suffix).")
@click.option("--no-vector", is_flag=True, help="Do not write change polygons.")
@click.option("--min-area", type=float, default=0.0, show_default=True, help="Merge change polygons smaller than this (m², px²) into a neighbour.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON line.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
def command(before: Path, after: Path, mapping: Path | None, zones: Path | None, zone_field: str | None,
            stem: Path | None, no_vector: bool, min_area: float, overwrite: bool, as_json: bool, quiet: bool) -> None:
    from jess_geo.io.atomic import atomic_output, remove_quietly, temp_name
    from jess_geo.io.geotiff import class_writer
    from jess_geo.measure.change import aligned, change_classes, load_mapping, run_change
    from jess_geo.measure.change_outputs import write_change_chart, write_change_polygons
    from jess_geo.measure.grid import open_class_raster
    from jess_geo.measure.outputs import check_outputs, output_paths, progress_reporter, write_csv, write_json
    from jess_geo.measure.tables import change_class_rows, format_change, transition_rows, zone_transition_rows
    from jess_geo.measure.zones import read_zones

    stem = stem or before.with_name(f"{before.stem}_to_{after.stem}")
    suffixes = ["_transitions.csv", "_classes.csv", ".json", ".tif", ".png"] + ([] if no_vector else [".gpkg"])
    suffixes += ["_zones.csv"] if zones is not None else []
    paths = output_paths(stem, suffixes)
    say = (lambda m: None) if (quiet or as_json) else (lambda m: click.echo(f"notice: {m}", err=True))
    changed_tmp = temp_name(paths[".tif"].with_name(paths[".tif"].stem + "_changed.tif"))
    try:
        with open_class_raster(before) as (src_b, gb), open_class_raster(after) as (src_a, ga):
            lut = load_mapping(mapping, gb, ga)
            z = read_zones(zones, zone_field, gb) if zones is not None else None
            check_outputs(paths.values(), overwrite, [before, after] + [p for p in (mapping, zones) if p])
            pairs = change_classes(gb)
            with aligned(src_a, ga, gb) as (src_al, notice):
                if notice:
                    say(notice)
                open_w = lambda p: class_writer(p, width=gb.width, height=gb.height, crs_wkt=gb.crs_wkt,  # noqa: E731
                                                transform=gb.transform, classes=pairs, source=f"{before.name} -> {after.name}")
                with atomic_output(paths[".tif"]) as tmp:
                    writers = [open_w(tmp)] + ([] if no_vector else [open_w(changed_tmp)])
                    try:
                        reporter = progress_reporter(as_json, quiet)
                        total, per_zone = run_change(src_b, gb, src_al, ga, lut, writers=tuple(writers), zones=z,
                                                     progress=reporter)
                        reporter.close()
                    finally:
                        for w in writers:
                            w.close()
        summary = total.summary(gb.names)
        unit = gb.area_unit
        if not no_vector:
            write_change_polygons(changed_tmp, paths[".gpkg"], pairs, source=f"{before.name} -> {after.name}",
                                  min_area=min_area)
    finally:
        remove_quietly(changed_tmp)
    write_csv(paths["_transitions.csv"], *transition_rows(summary, unit))
    write_csv(paths["_classes.csv"], *change_class_rows(summary, unit))
    zone_docs = [{"zone": name, **t.summary(gb.names)} for name, t in zip(z.names, per_zone)] if z is not None else []
    if z is not None:
        write_csv(paths["_zones.csv"], *zone_transition_rows(zone_docs, unit))
    write_change_chart(summary, paths[".png"], unit, title=f"{before.name} -> {after.name}")
    write_json(paths[".json"], {"before": str(before), "after": str(after), "area_unit": unit, "aligned": notice,
                                "change_classes": pairs, **summary, "zones": zone_docs})
    if as_json:
        click.echo(json.dumps({"stage": "done", "outputs": {k: str(v) for k, v in paths.items()}, "area_unit": unit,
                               "valid_pixels": summary["valid_pixels"], "changed_pixels": summary["changed_pixels"]}))
    elif not quiet:
        click.echo(format_change(summary, unit))
        for p in paths.values():
            click.echo(f"  {p}")
