"""The tile plan of one scene: tile size and overlap in working and input pixels, network shape.

Tiles are laid out in *input* pixels (:mod:`jess_geo.inference.tiling`). When the model works at
another resolution (``scale`` != 1), the tile size and overlap given in working pixels are
converted to input pixels; each tile is resampled to ``work_shape`` before the network and
padded to ``net_shape`` (a multiple of the network's size multiple).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jess_geo.errors import InputError
from jess_geo.inference.tiling import TileGrid, network_size, valid_tile_size
from jess_geo.preprocess import scaled_shape


@dataclass(frozen=True)
class TilePlan:
    """How one scene is cut into network tiles."""

    scale: float  # input pixels -> working pixels
    tile: int  # working pixels (network tile)
    overlap: int  # working pixels
    grid: TileGrid  # input pixels
    work_shape: tuple[int, int]  # a tile at working resolution, before padding
    net_shape: tuple[int, int]  # padded network input (H, W)
    notices: tuple[str, ...] = ()

    @property
    def working_size(self) -> tuple[int, int]:
        """The scene's size (width, height) at the model's working resolution."""
        h, w = scaled_shape(self.grid.height, self.grid.width, self.scale)
        return (w, h)


def check_tile_options(tile: int, overlap: int, multiple: int) -> None:
    """One-line InputErrors for a tile size or overlap that cannot work."""
    if tile < 1:
        raise InputError(f"Tile size {tile} is not positive; pass --tile-size with a multiple of {multiple} such as 512.")
    if overlap < 0 or overlap >= tile:
        raise InputError(f"Overlap {overlap} does not fit tile size {tile}; pass --overlap between 0 and {tile // 2}.")


def plan_tiles(height: int, width: int, scale: float, multiple: int, tile: int, overlap: int) -> TilePlan:
    """Plan tiles of ``tile`` working pixels with ``overlap`` over a ``height`` x ``width`` scene."""
    check_tile_options(tile, overlap, multiple)
    notices: list[str] = []
    tile, note = valid_tile_size(tile, multiple)
    if note:
        notices.append(note)
    if overlap >= tile:
        raise InputError(f"Overlap {overlap} does not fit tile size {tile}; pass --overlap between 0 and {tile // 2}.")
    if overlap > tile // 2:
        notices.append(f"Overlap {overlap} is more than half the tile size {tile}; blending uses ramps of {tile // 2} pixels.")
    if not math.isfinite(scale) or scale <= 0:
        raise InputError(f"The working scale {scale} is not usable; check the model's resolution metadata.")
    tile_in = max(1, int(round(tile / scale)))
    ov_in = min(int(round(overlap / scale)), tile_in - 1)
    grid = TileGrid(height, width, tile_in, ov_in)
    th, tw = grid.tile_height, grid.tile_width
    work = scaled_shape(th, tw, scale) if scale != 1.0 else (th, tw)
    work = (tile if th == tile_in else work[0], tile if tw == tile_in else work[1])
    net = (network_size(work[0], multiple), network_size(work[1], multiple))
    return TilePlan(scale, tile, overlap, grid, work, net, tuple(notices))
