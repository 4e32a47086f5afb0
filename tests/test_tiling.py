"""Tile layout and blending weights (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from jess_geo.inference.tiling import (
    WEIGHT_FLOOR,
    TileGrid,
    network_size,
    ramp,
    tile_starts,
    tile_weights,
    valid_tile_size,
)


@pytest.mark.parametrize("length,tile,overlap", [(1, 64, 16), (63, 64, 16), (64, 64, 16), (65, 64, 16), (100, 64, 0),
                                                 (1000, 256, 64), (257, 256, 255), (999, 128, 32)])
def test_tiles_cover_every_pixel_and_stay_inside(length: int, tile: int, overlap: int) -> None:
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    covered = np.zeros(length, dtype=int)
    for s in starts:
        assert 0 <= s and s + size <= length
        covered[s : s + size] += 1
    assert covered.min() >= 1
    assert starts[0] == 0 and starts[-1] + size == length
    assert starts == sorted(set(starts))
    # neighbours overlap by at least `overlap` (the last one may overlap more)
    for a, b in zip(starts, starts[1:]):
        assert b - a <= tile - overlap


def test_tile_starts_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        tile_starts(0, 64, 0)
    with pytest.raises(ValueError):
        tile_starts(10, 64, 64)


def test_grid_rows_and_border_flags() -> None:
    grid = TileGrid(height=300, width=130, tile=128, overlap=32)
    rows = list(grid.rows())
    assert len(rows) == len(grid.row_starts) == 3
    assert all(len(r) == 2 for r in rows)
    assert len(grid) == 6
    assert rows[0][0].top and rows[0][0].left and not rows[0][0].bottom and not rows[0][0].right
    assert rows[-1][-1].bottom and rows[-1][-1].right
    assert [t.index for r in rows for t in r] == list(range(6))
    assert grid.finalized_until(0) == grid.row_starts[1]
    assert grid.finalized_until(2) == 300


def test_small_scene_single_short_tile() -> None:
    grid = TileGrid(height=20, width=45, tile=64, overlap=16)
    (row,) = list(grid.rows())
    (t,) = row
    assert (t.row, t.col, t.height, t.width) == (0, 0, 20, 45)
    assert t.top and t.bottom and t.left and t.right
    assert np.all(tile_weights(t, 16) == 1.0)


def test_ramps_sum_to_one_over_exact_overlap() -> None:
    tile, overlap = 64, 16
    a = ramp(tile, overlap, rise=False, fall=True)
    b = ramp(tile, overlap, rise=True, fall=False)
    np.testing.assert_allclose(a[tile - overlap :] + b[:overlap], 1.0, atol=1e-9)
    assert a[0] == 1.0 and b[-1] == 1.0
    assert a.min() >= WEIGHT_FLOOR and np.all(np.diff(a[tile - overlap :]) < 0)


def test_weights_are_one_on_scene_borders_and_positive_everywhere() -> None:
    grid = TileGrid(height=200, width=200, tile=96, overlap=24)
    for row in grid.rows():
        for t in row:
            w = tile_weights(t, grid.overlap)
            assert w.shape == (t.height, t.width) and w.dtype == np.float32
            assert w.min() > 0
            if t.top:
                assert np.all(w[0, 24:-24] == 1.0) or t.width < 48
            if t.left:
                assert np.all(w[24:-24, 0] == 1.0)
            assert not w.flags.writeable


def test_blending_a_field_reproduces_it() -> None:
    """Tiles that each see the same field blend back to exactly that field (no seams, no gaps)."""
    rng = np.random.default_rng(1)
    for h, w, tile, ov in [(131, 77, 32, 8), (64, 64, 64, 16), (300, 200, 96, 40), (10, 300, 64, 0)]:
        field = rng.normal(size=(3, h, w)).astype(np.float32)
        acc = np.zeros_like(field)
        wsum = np.zeros((h, w), np.float32)
        grid = TileGrid(h, w, tile, ov)
        for row in grid.rows():
            for t in row:
                wt = tile_weights(t, ov)
                sl = (slice(t.row, t.row + t.height), slice(t.col, t.col + t.width))
                acc[:, sl[0], sl[1]] += field[:, sl[0], sl[1]] * wt
                wsum[sl] += wt
        assert wsum.min() > 0
        np.testing.assert_allclose(acc / wsum[None], field, rtol=1e-5, atol=1e-5)


def test_valid_tile_size_and_network_size() -> None:
    assert valid_tile_size(256, 32) == (256, None)
    size, note = valid_tile_size(100, 32)
    assert size == 96 and "multiple of 32" in note
    assert valid_tile_size(5, 32)[0] == 32
    assert network_size(1, 32) == 32 and network_size(33, 32) == 64 and network_size(64, 32) == 64


def test_numpy_resampling_matches_torch_bilinear() -> None:
    """The pipeline's numpy resampling is torch's bilinear (antialiased when shrinking), to 1e-5."""
    import torch
    import torch.nn.functional as F

    from jess_geo.inference.resample import resize_bilinear, resize_nearest

    rng = np.random.default_rng(0)
    for (h, w), (H, W) in [((64, 80), (32, 40)), ((50, 70), (100, 140)), ((77, 31), (40, 60)), ((13, 17), (50, 9))]:
        x = rng.normal(size=(3, h, w)).astype(np.float32)
        ref = F.interpolate(torch.from_numpy(x)[None], size=(H, W), mode="bilinear", align_corners=False,
                            antialias=not (H >= h and W >= w))[0].numpy()
        np.testing.assert_allclose(resize_bilinear(x, (H, W)), ref, atol=1e-5)
    m = np.zeros((4, 4), bool)
    m[:2, :2] = True
    assert resize_nearest(m, (2, 2)).tolist() == [[True, False], [False, False]]
    assert resize_nearest(m, (8, 8)).sum() == 16
