"""Everything decided before a scene is read in earnest: options, guards, bands, tiles, outputs.

:func:`prepare_scene` is cheap (metadata and a few small windows are read), so the command line
prepares and checks every scene of a run before any work, and ``--dry-run`` prints the result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from jess_geo.adaptation.colour import lookup_tables
from jess_geo.bands import resolve_bands
from jess_geo.errors import InputError
from jess_geo.inference import guards
from jess_geo.inference.aoi import area_json, context_pixels, count_tiles, crop_info, resolve_area
from jess_geo.inference.job import Job
from jess_geo.inference.outputs import OutputPlan
from jess_geo.inference.tileplan import plan_tiles
from jess_geo.inference.tta import MODES, check_mode
from jess_geo.io.raster import open_raster, info_from_dataset, sample_values
from jess_geo.preprocess import working_scale


@dataclass(frozen=True)
class Options:
    """How to predict (the same for every scene of a run)."""

    tile_size: int | None = None  # working pixels; default from the model
    overlap: int | None = None
    batch_size: int = 4
    streams: int | None = None  # concurrent network runs per batch (ONNX runtimes; default: the runtime's)
    bands: tuple[int, ...] | None = None  # scene bands for the model inputs (--bands)
    allow_resolution_mismatch: bool = False
    device: str = "auto"
    runtime: str | None = None
    cog: bool = False
    overwrite: bool = False
    min_area: float = 0.0
    simplify: float = 0.0
    area: Any = None  # jess_geo.io.aoi.AreaSpec: work on this area only (--aoi / --bbox)
    tta: str = "none"  # test-time augmentation: none, flips or d4 (jess_geo.inference.tta)

    def check(self) -> None:
        """Range-check every number and name the augmentation (one-line InputError)."""
        guards.check_numbers(tile_size=self.tile_size, overlap=self.overlap, batch_size=self.batch_size, streams=self.streams,
                             min_area=self.min_area, simplify=self.simplify)
        check_mode(self.tta)


@dataclass(frozen=True)
class Prepared:
    """One scene ready to run: the job for the pipeline, its outputs, notices to show."""

    job: Job
    outputs: OutputPlan | None
    notices: tuple[str, ...] = field(default=())

    def plan_json(self) -> dict[str, Any]:
        """The plan line of contract 2 (``--dry-run --json`` and the start of ``--json-progress``)."""
        t = self.job.tiles
        outputs = self.outputs.to_json() if self.outputs is not None else None
        scene = self.outputs.scene if self.outputs is not None else self.job.info.source
        return {"stage": "plan", "scene": scene, "outputs": outputs,
                "tiles": len(t.grid), "working_size": list(t.working_size), "tile_size": t.tile,
                "overlap": t.overlap, "scale": t.scale, "aoi": area_json(self.job.area), "tta": self.job.tta}

    def plan_text(self) -> str:
        """The plan in one line for people."""
        t = self.job.tiles
        w, h = t.working_size
        a = self.job.area
        where = "" if a is None else f" in the {a.label} ({a.tiles_in_area} with a part inside it)"
        views = len(MODES[self.job.tta])
        tta = "" if views == 1 else f", test-time augmentation {self.job.tta} ({views} views per tile)"
        return (f"{self.job.info.name}: {len(t.grid)} tile(s) of {t.tile} px (overlap {t.overlap}){where}, "
                f"working size {w} x {h} px (scale {t.scale:.4g}){tta}.")


def check_metadata(meta: dict[str, Any], name: str) -> int:
    """The network's size multiple; a class list that does not fit the network is refused."""
    from jess_geo.models.factory import size_multiple

    classes, k = meta["classes"], int(meta["architecture"]["num_classes"])
    if k != len(classes):
        raise InputError(f"Model {name} lists {len(classes)} classes but outputs {k}; retrain it.")
    return size_multiple(meta["architecture"])


def prepare_scene(scene: str | Path, meta: dict[str, Any], outputs: OutputPlan | None, opts: Options,
                  model_name: str = "model") -> Prepared:
    """Inspect ``scene``, run the guards, resolve bands and plan tiles (raises before any work)."""
    notices: list[str] = []
    with open_raster(scene) as src:
        info = info_from_dataset(src)
        guards.check_scene(info)
        bands = resolve_bands(info.count, meta["bands"], user_bands=list(opts.bands) if opts.bands else None,
                              alpha_band=info.alpha_band, name=info.name)
        note = guards.check_resolution(info, meta["resolution"], allow=opts.allow_resolution_mismatch)
        notices += [n for n in (bands.notice, note) if n]
        far = guards.range_notice(info.name, sample_values(src, bands.data), meta["normalization"])
        if far:
            notices.append(far)
    scale = working_scale(info, meta["resolution"])
    tile = int(opts.tile_size if opts.tile_size is not None else meta.get("tile_size", 512))
    overlap = int(opts.overlap if opts.overlap is not None else meta.get("overlap", 64))
    area = None
    if opts.area is not None:  # the pipeline sees the area's window (with context around it) as the scene
        area = resolve_area(opts.area, info, *context_pixels(overlap, scale))
        info = crop_info(info, area)
        notices += [area.notice] if area.notice else []
    multiple = check_metadata(meta, model_name)  # after the guards: a refused scene never imports the network code
    tiles = plan_tiles(info.height, info.width, scale, multiple, tile, overlap)
    job = dataclasses.replace(Job.make(info, bands.data, meta["normalization"], meta["classes"], tiles),
                              tta=check_mode(opts.tta))
    job = dataclasses.replace(job, feature_stats=meta.get("feature_stats"))  # for the shift notice (jess_geo.shift.watch)
    job = dataclasses.replace(job, colour=lookup_tables(meta.get("colour_alignment")))  # adapt --method histmatch
    if area is not None:
        job = dataclasses.replace(job, area=count_tiles(area, tiles.grid))
    return Prepared(job, outputs, tuple(notices) + tiles.notices)


def prepare_all(scenes: Sequence[tuple[str | Path, OutputPlan]], meta: dict[str, Any], opts: Options,
                model_name: str) -> list[Prepared]:
    """:func:`prepare_scene` for every scene (the first problem raises)."""
    return [prepare_scene(s, meta, o, opts, model_name) for s, o in scenes]
