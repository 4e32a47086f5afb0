"""One scene against a model's training data: a bounded sample of tiles through the network.

The scene is prepared as ``predict`` prepares it (guards, bands, working resolution, tile plan),
then at most ``max_tiles`` tiles spread over it are read, normalised and run, so a huge scene
costs as much as a small one. From that one pass: the shift score (BatchNorm inputs against the
model's ``feature_stats``), the mean per-pixel entropy of the class probabilities and the mean
free energy ``-logsumexp(logits)``. torch runtime only (the hooks need the network's layers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jess_geo.adaptation.colour import apply_tables
from jess_geo.errors import InputError
from jess_geo.inference.prepare import Options, prepare_scene
from jess_geo.inference.resample import resize_bilinear, resize_nearest
from jess_geo.io.raster import finite_mask, open_raster, read_rows, read_valid
from jess_geo.models.modelfile import LoadedModel
from jess_geo.shift.stats import DEFAULT_METRIC, THRESHOLD, FeatureCollector, running_statistics, shift_score, threshold_for

__all__ = ["DEFAULT_METRIC", "MAX_TILES", "THRESHOLD", "SceneShift", "measure_scene", "model_reference", "threshold_for",
           "verdict"]

MAX_TILES = 16


@dataclass
class SceneShift:
    """What one scene's sample of tiles showed."""

    scene: str
    score: float
    entropy: float
    energy: float
    tiles: int
    tiles_total: int
    shifted: bool
    stats: dict[str, Any] | None = None  # the scene's feature statistics (not in the JSON)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"scene": self.scene, "score": round(self.score, 4), "entropy": round(self.entropy, 4),
                "energy": round(self.energy, 4), "tiles": self.tiles, "tiles_total": self.tiles_total,
                "shifted": self.shifted}


def model_reference(loaded: LoadedModel) -> tuple[dict[str, Any], str]:
    """``(reference statistics, origin)``: the stored ``feature_stats``, or the BatchNorm running statistics."""
    stored = loaded.metadata.get("feature_stats")
    if stored:
        return stored, "stored"
    return running_statistics(loaded.model), "fallback"


def verdict(score: float, threshold: float = THRESHOLD) -> bool:
    """True when ``score`` says the scene is unlike the training data."""
    return bool(np.isfinite(score) and score > threshold)


def _tile_windows(job: Any, max_tiles: int) -> list[tuple[int, int, int, int]]:
    grid = job.tiles.grid
    wins = [(r, c, grid.tile_height, grid.tile_width) for r in grid.row_starts for c in grid.col_starts]
    if len(wins) > max_tiles:
        keep = np.linspace(0, len(wins) - 1, max_tiles).round().astype(int)
        wins = [wins[i] for i in dict.fromkeys(keep.tolist())]
    return wins


def _read_tile(src: Any, job: Any, win: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """A normalised, padded ``(C, nh, nw)`` tile and its valid mask at working size; None if mostly invalid."""
    from rasterio.windows import Window

    r, c, h, w = win
    off_r, off_c = (job.area.row_off, job.area.col_off) if job.area is not None else (0, 0)
    raw = read_rows(src, job.bands, r + off_r, r + off_r + h, (c + off_c, c + off_c + w))
    raw = apply_tables(raw, job.colour).astype(np.float32)  # the model's colour alignment, as predict applies it
    valid = read_valid(src, window=Window(c + off_c, r + off_r, w, h))
    finite = finite_mask(raw)
    valid = valid if finite is None else valid & finite
    if valid.mean() < 0.5:
        return None
    np.copyto(raw, np.broadcast_to(job.mean, raw.shape), where=~valid[None])
    work = job.tiles.work_shape
    if job.tiles.scale != 1.0:
        raw, valid = resize_bilinear(raw, work), resize_nearest(valid, work)
    x = np.zeros((raw.shape[0], *job.tiles.net_shape), np.float32)
    x[:, : raw.shape[1], : raw.shape[2]] = (raw - job.mean) / job.std * valid[None]
    return x, valid


def _logit_moments(logits: torch.Tensor, valid: np.ndarray) -> tuple[float, float, int]:
    """Sums of per-pixel entropy and free energy over the valid pixels, and their count."""
    h, w = valid.shape[-2:]
    y = logits[0, :, :h, :w].float()
    logp = torch.log_softmax(y, dim=0)
    ent = -(logp.exp() * logp).sum(dim=0)
    energy = -torch.logsumexp(y, dim=0)
    m = torch.from_numpy(valid)
    return float(ent[m].sum()), float(energy[m].sum()), int(m.sum())


def measure_scene(loaded: LoadedModel, scene: str | Path, *, reference: dict[str, Any] | None = None,
                  max_tiles: int = MAX_TILES, batch_size: int = 4, metric: str = DEFAULT_METRIC,
                  threshold: float | None = None, opts: Options | None = None) -> SceneShift:
    """Score ``scene`` against ``reference`` (default: :func:`model_reference`) with ``loaded``'s network;
    ``threshold`` defaults to :func:`threshold_for` the reference's origin.

    Raises:
        InputError: the scene cannot be read or has no tile with mostly valid pixels.
    """
    if max_tiles < 1:
        raise InputError(f"--max-tiles {max_tiles} is not positive; pass 1 or more (16 is the default).")
    prep = prepare_scene(scene, loaded.metadata, None, opts or Options(), "model")
    job = prep.job
    ref, origin = (reference, "given") if reference is not None else model_reference(loaded)
    limit = threshold if threshold is not None else threshold_for(origin)
    wins = _tile_windows(job, max_tiles)
    sums, n_tiles = [0.0, 0.0, 0], 0
    net = loaded.model.eval()
    with open_raster(job.info.source or job.info.path) as src, torch.inference_mode(), FeatureCollector(net) as fc:
        tiles = [t for t in (_read_tile(src, job, w) for w in wins) if t is not None]
        for i in range(0, len(tiles), batch_size):
            chunk = tiles[i : i + batch_size]
            logits = net(torch.from_numpy(np.stack([t[0] for t in chunk])))
            for k, (_x, valid) in enumerate(chunk):
                e, f, n = _logit_moments(logits[k : k + 1], valid)
                sums[0] += e
                sums[1] += f
                sums[2] += n
            n_tiles += len(chunk)
    if n_tiles == 0:
        raise InputError(f"{job.info.name} has no tile with mostly valid pixels; check its nodata value or mask.")
    stats = fc.statistics()
    score = shift_score(ref, stats, metric)
    n = max(int(sums[2]), 1)
    return SceneShift(job.info.name, score, sums[0] / n, sums[1] / n, n_tiles, len(job.tiles.grid),
                      verdict(score, limit), stats)
