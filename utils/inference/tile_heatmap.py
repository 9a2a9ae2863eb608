"""One Grad-CAM map over a whole photo from its tiles' maps, each placed where its tile was cut.

Each tile's map is Grad-CAM's (pytorch-grad-cam's weighting: channel weights are the spatial mean of the gradient,
the weighted activations summed and clipped at zero), but not min-max scaled per tile: the tiles are scaled
together, by the largest value over the whole image, so a tile with weak evidence stays dim beside a strong one.
Where tiles overlap their maps are averaged; pixels no tile covered are NaN (the overlay leaves them unpainted).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from utils.inference.tiling import TileBox


def raw_tile_cams(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """(K, h, w) unscaled Grad-CAM maps from the layer's activations and gradients, both (K, C, h, w)."""
    weights = gradients.mean(axis=(2, 3), keepdims=True)
    return np.maximum((weights * activations).sum(axis=1), 0.0).astype(np.float32)


def map_shape(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(rows, cols) of the whole-image map: the image's aspect, the longer side at most `max_side` cells."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(height * scale)), max(1, round(width * scale))


def stitch_tile_maps(tile_maps: np.ndarray, boxes: list[TileBox], width: int, height: int,
                     max_side: int) -> np.ndarray:
    """The whole-image map (rows, cols) in [0, 1], NaN where no tile lies; tiles beyond the image are clipped."""
    rows, cols = map_shape(width, height, max_side)
    scale_x, scale_y = cols / width, rows / height
    total = np.zeros((rows, cols), dtype=np.float64)
    count = np.zeros((rows, cols), dtype=np.float64)
    for tile_map, box in zip(tile_maps, boxes):
        # the part of the tile inside the image (an image smaller than a tile was padded on the bottom/right)
        inside_w, inside_h = min(box.size, width - box.x), min(box.size, height - box.y)
        x0, y0 = math.floor(box.x * scale_x), math.floor(box.y * scale_y)
        x1 = max(x0 + 1, min(cols, math.ceil((box.x + inside_w) * scale_x)))
        y1 = max(y0 + 1, min(rows, math.ceil((box.y + inside_h) * scale_y)))
        full = cv2.resize(np.ascontiguousarray(tile_map, dtype=np.float32), (box.size, box.size),
                          interpolation=cv2.INTER_LINEAR)[:inside_h, :inside_w]
        total[y0:y1, x0:x1] += cv2.resize(full, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        count[y0:y1, x0:x1] += 1.0
    stitched = np.full((rows, cols), np.nan, dtype=np.float32)
    covered = count > 0
    stitched[covered] = total[covered] / count[covered]
    peak = float(np.nanmax(stitched)) if covered.any() else 0.0
    if peak > 0:
        stitched[covered] /= peak
    else:
        stitched[covered] = 0.0
    return stitched
