"""Where a photo is scored: tiles inside the image, covering it as specified, deterministic, small images padded."""
from __future__ import annotations

import numpy as np
import pytest

from utils.inference.tiling import TileBox, extract_tiles, is_smaller_than_tile, pad_to_tile, tile_grid, tile_image

SIZES = [(64, 64), (65, 64), (224, 224), (200, 213), (300, 200), (800, 600), (2048, 1536), (4000, 500),
         (500, 4000), (1001, 777), (64, 3000)]


@pytest.mark.parametrize("width, height", SIZES)
@pytest.mark.parametrize("max_tiles", [1, 4, 16])
def test_tiles_lie_inside_the_image_and_respect_the_budget(width, height, max_tiles):
    boxes = tile_grid(width, height, 64, max_tiles)
    assert 1 <= len(boxes) <= max_tiles
    assert len(set(boxes)) == len(boxes), "no tile is scored twice"
    for box in boxes:
        assert box.size == 64
        assert 0 <= box.x and box.x + 64 <= width and 0 <= box.y and box.y + 64 <= height


@pytest.mark.parametrize("width, height", [(224, 224), (200, 213), (256, 190), (130, 65), (1000, 64)])
def test_a_grid_that_fits_the_budget_covers_every_pixel(width, height):
    covered = np.zeros((height, width), dtype=bool)
    for box in tile_grid(width, height, 64, 16):
        covered[box.y:box.y + 64, box.x:box.x + 64] = True
    assert covered.all()


def test_a_224_px_validation_crop_is_covered_by_4x4_tiles_from_edge_to_edge():
    boxes = tile_grid(224, 224, 64, 16)
    assert sorted({b.x for b in boxes}) == [0, 53, 107, 160] == sorted({b.y for b in boxes})


def test_a_large_photo_gets_a_spread_grid_that_keeps_its_aspect():
    boxes = tile_grid(2048, 1536, 64, 16)
    xs, ys = sorted({b.x for b in boxes}), sorted({b.y for b in boxes})
    assert len(xs) * len(ys) == len(boxes) >= 12
    assert len(xs) >= len(ys), "more columns than rows on a landscape photo"
    assert xs[0] == 0 and xs[-1] == 2048 - 64 and ys[0] == 0 and ys[-1] == 1536 - 64, "spread edge to edge"


def test_a_long_strip_gets_its_tiles_along_its_length():
    boxes = tile_grid(4000, 500, 64, 16)
    assert len({b.x for b in boxes}) > len({b.y for b in boxes})


def test_tiling_is_deterministic():
    assert tile_grid(1234, 987, 64, 16) == tile_grid(1234, 987, 64, 16)


@pytest.mark.parametrize("width, height", [(10, 10), (1, 1), (300, 40), (40, 300), (63, 64)])
def test_an_image_smaller_than_a_tile_is_padded_to_one(width, height):
    assert is_smaller_than_tile(width, height, 64)
    array = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    padded = pad_to_tile(array, 64)
    assert padded.shape[0] >= 64 and padded.shape[1] >= 64
    assert np.array_equal(padded[:height, :width], array), "the image itself is unchanged at the top left"
    tiles, boxes = tile_image(array, 64, 16)
    assert tiles.shape[1:] == (64, 64, 3) and len(tiles) == len(boxes) >= 1


def test_extracted_tiles_are_the_pixels_under_their_boxes():
    array = np.random.default_rng(1).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    tiles, boxes = tile_image(array, 64, 16)
    for tile, box in zip(tiles, boxes):
        assert np.array_equal(tile, array[box.y:box.y + 64, box.x:box.x + 64])
    assert np.array_equal(extract_tiles(array, [TileBox(7, 9, 64)])[0], array[9:73, 7:71])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        tile_grid(0, 10, 64, 16)
    with pytest.raises(ValueError):
        tile_grid(100, 100, 64, 0)
