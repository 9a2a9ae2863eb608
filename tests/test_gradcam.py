"""Grad-CAM: hooks live only for one call, never touch the shared model, and give a [0,1] map at input size."""
import io

import numpy as np
import torch
from PIL import Image

from models import build_model
from utils.gradcam import GradCamExplainer, display_image, overlay_png


def _hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(getattr(m, "_forward_pre_hooks", {}))
               for m in model.modules())


def test_heatmap_is_in_unit_range_at_input_size_and_leaves_no_hooks():
    torch.manual_seed(0)
    model = build_model("artifact_cnn", widths=[8, 8, 16, 16]).eval()
    with torch.no_grad():
        for p in model.head.parameters():
            p.normal_()  # a non-zero head, so gradients (and the map) are not all zero
    explainer = GradCamExplainer(model, model.gradcam_layer)
    heat = explainer.heatmap(torch.randn(1, 3, 32, 32), class_index=1)
    assert heat.shape == (32, 32) and heat.min() >= 0 and heat.max() <= 1 and heat.max() > 0
    assert _hook_count(model) == 0, "the shared model must never carry Grad-CAM hooks"
    assert _hook_count(explainer._model) == 0, "hooks must be removed after each call"


def test_explaining_does_not_change_the_shared_models_outputs():
    torch.manual_seed(0)
    model = build_model("artifact_cnn", widths=[8, 8, 16, 16]).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        before = model(x)
    GradCamExplainer(model, model.gradcam_layer).heatmap(x, class_index=0)
    with torch.inference_mode():
        assert torch.equal(before, model(x))
    assert all(p.grad is None for p in model.parameters())


def test_same_input_gives_the_same_heatmap():
    model = build_model("efficientnet_b0").eval()
    explainer = GradCamExplainer(model, model.gradcam_layer)
    x = torch.randn(1, 3, 32, 32)
    assert np.array_equal(explainer.heatmap(x, 1), explainer.heatmap(x, 1))


def test_overlay_is_a_png_of_the_display_size_and_tiny_images_are_enlarged():
    big = display_image(Image.new("RGB", (1000, 500)), 256)
    assert big.shape == (128, 256, 3)
    png = overlay_png(big, np.random.rand(32, 32).astype(np.float32))
    assert Image.open(io.BytesIO(png)).size == (256, 128)
    tiny = overlay_png(display_image(Image.new("RGB", (32, 32)), 256), np.zeros((32, 32), np.float32))
    assert Image.open(io.BytesIO(tiny)).size == (128, 128)
