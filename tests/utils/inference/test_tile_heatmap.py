"""Grad-CAM over a whole photo: per-tile maps land at their tiles, unscored areas stay empty, gradients batch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models import build_model, split_at_gradcam_layer
from utils.inference.gradcam import GradCamExplainer
from utils.inference.tile_heatmap import map_shape, raw_tile_cams, stitch_tile_maps
from utils.inference.tiling import TileBox, tile_grid


def test_a_hot_tile_lights_up_exactly_where_it_was_cut():
    boxes = [TileBox(0, 0, 64), TileBox(192, 128, 64)]
    maps = np.stack([np.zeros((8, 8)), np.ones((8, 8))]).astype(np.float32)
    heat = stitch_tile_maps(maps, boxes, 256, 192, max_side=256)  # one cell per pixel
    assert heat.shape == (192, 256)
    assert np.all(heat[128:192, 192:256] == 1.0), "the hot tile's own pixels"
    assert np.all(heat[0:64, 0:64] == 0.0), "the cold tile is scored but cold"
    assert np.isnan(heat[100, 100]) and np.isnan(heat[0, 255]), "no tile there: unscored, not cold"


def test_maps_are_scaled_together_so_weak_tiles_stay_dim():
    boxes = [TileBox(0, 0, 64), TileBox(64, 0, 64)]
    maps = np.stack([np.full((8, 8), 0.5), np.full((8, 8), 2.0)]).astype(np.float32)
    heat = stitch_tile_maps(maps, boxes, 128, 64, max_side=128)
    assert heat[:, :64].max() == pytest.approx(0.25) and heat[:, 64:].max() == pytest.approx(1.0)


def test_the_map_keeps_the_image_aspect_at_its_cell_budget():
    assert map_shape(2048, 1536, 64) == (48, 64)
    assert map_shape(300, 40, 64) == (9, 64)
    assert map_shape(50, 50, 64) == (50, 50)


def test_a_padded_small_image_keeps_only_the_part_of_the_tile_inside_it():
    heat = stitch_tile_maps(np.ones((1, 8, 8), np.float32), [TileBox(0, 0, 64)], 300, 40, max_side=300)
    assert heat.shape == (40, 300)
    assert np.all(heat[:, :64] == 1.0) and np.isnan(heat[:, 64:]).all()


def test_full_coverage_leaves_nothing_unscored():
    boxes = tile_grid(224, 224, 64, 16)
    heat = stitch_tile_maps(np.random.default_rng(0).random((16, 8, 8), dtype=np.float32), boxes, 224, 224, 64)
    assert np.isfinite(heat).all() and heat.max() == pytest.approx(1.0)


def test_raw_cams_are_grad_cam_without_per_tile_scaling():
    rng = np.random.default_rng(1)
    activations, gradients = rng.random((3, 5, 4, 4)), rng.standard_normal((3, 5, 4, 4))
    expected = np.maximum((gradients.mean(axis=(2, 3))[:, :, None, None] * activations).sum(axis=1), 0)
    assert np.allclose(raw_tile_cams(activations, gradients), expected, atol=1e-6)


@pytest.mark.parametrize("arch, arch_args", [("artifact_cnn", {"widths": [8, 8, 16, 16], "first_stage_stride": 2}),
                                             ("efficientnet_b0", {})])
@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_tile_gradients_in_one_batch_equal_autograd_tile_by_tile(arch, arch_args, runtime):
    torch.manual_seed(0)
    model = build_model(arch, **arch_args).eval().requires_grad_(False)
    split = split_at_gradcam_layer(arch, model)
    explainer = GradCamExplainer(split, 64, runtime=runtime, threads=1, tile_batch=4)
    with torch.no_grad():
        layer = split.prefix(torch.randn(6, 3, 64, 64))  # 6 tiles: one full batch of 4 and a padded one
    gradients = explainer.tile_gradients(layer.numpy(), class_index=1)
    for k in range(6):
        leaf = layer[k:k + 1].clone().requires_grad_(True)
        with torch.enable_grad():
            split.suffix(leaf)[0, 1].backward()
        assert np.allclose(gradients[k], leaf.grad[0].numpy(), atol=1e-4, rtol=1e-3)
