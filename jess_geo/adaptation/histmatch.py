"""Histogram matching: a per-band lookup table from target colours to source colours, applied by predict.

`adapt` measures per-band quantiles of the source images (``--images``, those the model was
trained on) and of the target images, at the model's working resolution, and stores the table
mapping one onto the other in the model file (``colour_alignment``, see
:mod:`jess_geo.adaptation.colour`). The weights are not changed; `jess-geo predict` and
`evaluate` pass the raw bands of every tile through the table before normalisation.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from jess_geo.adaptation.colour import LEVELS, band_quantiles, colour_alignment
from jess_geo.adaptation.common import (
    Crops, adapted_metadata, figures, finish, image_scenes, labelled_scenes, record, start, window_batches,
)


def adapt_histmatch(
    model: str | Path, images: str | Path, target_images: str | Path, output: str | Path, *,
    target_masks: str | Path | None = None, crop_size: int = 256, batch_size: int = 8, overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``output``: ``model`` with a colour alignment of ``target_images`` toward ``images``.

    ``crop_size``/``batch_size`` only shape the measuring windows; ``target_masks`` only measure.
    """
    t0 = time.perf_counter()
    model_path, out, base = start(model, output, overwrite)
    meta = {k: v for k, v in base.metadata.items() if k != "colour_alignment"}  # the raw target is measured
    source = image_scenes(images, meta, "source images")
    target = image_scenes(target_images, meta)
    src_q = band_quantiles([s.image for s in source], [s.valid for s in source], LEVELS, "source images")
    tgt_q = band_quantiles([s.image for s in target], [s.valid for s in target], LEVELS, "target images")
    alignment = colour_alignment(src_q, tgt_q, source=str(Path(images).resolve()), target=str(Path(target_images).resolve()))
    adapted = dict(meta, colour_alignment=alignment)
    crops, k = Crops(crop_size, batch_size), len(meta["classes"])

    def windows(m: dict[str, Any]) -> Any:
        scenes = labelled_scenes(target_images, target_masks, m) if target_masks else image_scenes(target_images, m)
        return window_batches(scenes, m, crops)

    before, after = figures(base.model, windows(base.metadata), k), figures(base.model, windows(adapted), k)
    settings = {"kind": alignment["kind"], "levels": LEVELS, "source_images": alignment["source_images"],
                "applied": "by predict, to every tile before normalisation"}
    rec = record("histmatch", model_path, base.metadata, target_images, settings)
    rec.update(before=before, after=after, replaced_alignment=base.metadata.get("colour_alignment") is not None)
    return finish(out, base.model, adapted_metadata(adapted, rec), time.perf_counter() - t0)
