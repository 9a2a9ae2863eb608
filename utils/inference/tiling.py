"""Where a photo is scored: K native-resolution tiles spread over the image, the same for validation and serving.

A photo is never resized to fit a photo model. `tile_grid` places at most `max_tiles` square tiles on a grid:
when ceil(W/t) x ceil(H/t) tiles fit in the budget the grid covers the whole image (neighbours overlap where
the sides are not multiples of t); otherwise the grid keeps the image's aspect with fewer tiles, spread from edge
to edge. Tiles never leave the image, except for an image smaller than one tile on a side, which is
reflect-padded up to one tile (`pad_to_tile`) and reported as such.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TileBox:
    """A tile's top-left corner and side, in pixels of the (padded) image."""

    x: int
    y: int
    size: int

    def to_json(self) -> list[int]:
        """[x, y, width, height], the order the API reports boxes in."""
        return [self.x, self.y, self.size, self.size]


def _positions(length: int, tile: int, count: int) -> list[int]:
    if count == 1:
        return [(length - tile) // 2]
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _grid_shape(width: int, height: int, tile: int, max_tiles: int) -> tuple[int, int]:
    cols, rows = math.ceil(width / tile), math.ceil(height / tile)
    if cols * rows <= max_tiles:
        return cols, rows
    scale = math.sqrt(max_tiles / (cols * rows))
    fit_cols, fit_rows = max(1, min(cols, math.floor(cols * scale))), max(1, min(rows, math.floor(rows * scale)))
    while fit_cols * fit_rows > max_tiles:  # a side clamped up to 1 can push a very long strip over the budget
        if fit_cols >= fit_rows:
            fit_cols -= 1
        else:
            fit_rows -= 1
    while True:  # grow the side that is furthest behind its full-coverage count, while the budget allows
        grow_cols = fit_cols < cols and (fit_cols + 1) * fit_rows <= max_tiles
        grow_rows = fit_rows < rows and fit_cols * (fit_rows + 1) <= max_tiles
        if not (grow_cols or grow_rows):
            return fit_cols, fit_rows
        if grow_cols and (not grow_rows or fit_cols / cols <= fit_rows / rows):
            fit_cols += 1
        else:
            fit_rows += 1


def tile_grid(width: int, height: int, tile: int, max_tiles: int) -> list[TileBox]:
    """The tiles that score a `width` x `height` image, row by row; deterministic for the same arguments."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if tile < 1 or max_tiles < 1:
        raise ValueError(f"tile size and tile budget must be positive, got {tile} and {max_tiles}")
    width, height = max(width, tile), max(height, tile)  # a side shorter than a tile is padded up to one
    cols, rows = _grid_shape(width, height, tile, max_tiles)
    return [TileBox(x, y, tile) for y in _positions(height, tile, rows) for x in _positions(width, tile, cols)]


def is_smaller_than_tile(width: int, height: int, tile: int) -> bool:
    """Whether an image must be padded before one tile fits in it."""
    return width < tile or height < tile


def pad_to_tile(array: np.ndarray, tile: int) -> np.ndarray:
    """An HxWx3 array reflect-padded on the bottom and right so both sides are at least `tile`."""
    height, width = array.shape[:2]
    pad_y, pad_x = max(0, tile - height), max(0, tile - width)
    if not (pad_y or pad_x):
        return array
    # reflect needs a side longer than the pad; "symmetric" repeated until it fits covers 1-pixel images too
    while pad_y or pad_x:
        step_y, step_x = min(pad_y, array.shape[0]), min(pad_x, array.shape[1])
        array = np.pad(array, ((0, step_y), (0, step_x), (0, 0)), mode="symmetric")
        pad_y, pad_x = pad_y - step_y, pad_x - step_x
    return array


def extract_tiles(array: np.ndarray, boxes: list[TileBox]) -> np.ndarray:
    """The tiles of an HxWx3 uint8 array as one (K, t, t, 3) uint8 array, in the order of `boxes`."""
    if not boxes:
        raise ValueError("no tiles to extract")
    tile = boxes[0].size
    padded = pad_to_tile(array, tile)
    return np.stack([padded[b.y:b.y + b.size, b.x:b.x + b.size] for b in boxes])


def tile_image(array: np.ndarray, tile: int, max_tiles: int) -> tuple[np.ndarray, list[TileBox]]:
    """The tiles a photo model scores for an HxWx3 uint8 image, and where they lie: validation and serving both
    call this, so they cannot cut tiles differently."""
    boxes = tile_grid(array.shape[1], array.shape[0], tile, max_tiles)
    return extract_tiles(array, boxes), boxes
