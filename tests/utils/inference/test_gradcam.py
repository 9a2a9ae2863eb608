"""Grad-CAM: equals pytorch-grad-cam on the whole model, leaves no hooks behind, and gives a [0,1] map at input size."""
import io

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from models import build_model, split_at_gradcam_layer
from utils.inference.gradcam import GradCamExplainer
from utils.inference.overlay import display_image, overlay_jpeg


def _hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(getattr(m, "_forward_pre_hooks", {}))
               for m in model.modules())


def _model(arch: str, variant: int | None = None) -> torch.nn.Module:
    """A small CNN (variant: its first stage's stride, 2 as shipped) or EfficientNet-B0 (variant: its input
    upsampling factor, 1 as shipped)."""
    torch.manual_seed(0)
    if arch == "artifact_cnn":
        args = {"widths": [8, 8, 16, 16], "first_stage_stride": variant or 2}
    else:
        args = {"upsample": variant or 1}
    model = build_model(arch, **args).eval()
    with torch.no_grad():
        head = model.head[1] if arch == "artifact_cnn" else model.classifier[1]
        head.weight.normal_()  # a non-zero head, so gradients (and the map) are not all zero
    return model.requires_grad_(False)


def _explainer_and_layer_output(model: torch.nn.Module, arch: str, x: torch.Tensor, runtime: str = "torch"):
    split = split_at_gradcam_layer(arch, model)
    with torch.inference_mode():
        layer_output = split.prefix(x).numpy()
    return GradCamExplainer(split, x.shape[-1], runtime), layer_output


@pytest.mark.parametrize("arch, variant, runtime, used", [
    ("artifact_cnn", 2, "torch", "torch"), ("artifact_cnn", 1, "torch", "torch"),
    ("artifact_cnn", 2, "onnxruntime", "onnxruntime"), ("artifact_cnn", 1, "onnxruntime", "onnxruntime"),
    ("efficientnet_b0", 2, "torch", "torch"), ("efficientnet_b0", 2, "onnxruntime", "onnxruntime"),
    ("efficientnet_b0", 1, "torch", "torch"), ("efficientnet_b0", 1, "onnxruntime", "onnxruntime")])
def test_heatmap_from_the_layer_output_equals_grad_cam_run_on_the_whole_model(arch, variant, runtime, used):
    model = _model(arch, variant)
    x = torch.randn(1, 3, 32, 32)
    explainer, layer_output = _explainer_and_layer_output(model, arch, x, runtime)
    assert explainer.runtime == used
    with GradCAM(model=model, target_layers=[model.get_submodule(model.gradcam_layer)]) as reference_cam:
        reference = reference_cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(1)])[0]
    heat = explainer.heatmap(layer_output, class_index=1)
    assert heat.shape == (32, 32) and heat.max() > 0
    np.testing.assert_allclose(heat, reference, atol=1e-5)


def test_heatmap_is_in_unit_range_and_leaves_no_hooks_or_gradients():
    model = _model("artifact_cnn")
    explainer, layer_output = _explainer_and_layer_output(model, "artifact_cnn", torch.randn(1, 3, 32, 32))
    heat = explainer.heatmap(layer_output, class_index=1)
    assert heat.min() >= 0 and heat.max() <= 1
    assert _hook_count(model) == 0, "the shared model must never carry Grad-CAM hooks"
    assert _hook_count(explainer._model) == 0, "hooks must be removed after each call"
    assert all(p.grad is None for p in model.parameters())


def test_explaining_does_not_change_the_shared_models_outputs():
    model = _model("artifact_cnn")
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        before = model(x)
    explainer, layer_output = _explainer_and_layer_output(model, "artifact_cnn", x)
    explainer.heatmap(layer_output, class_index=0)
    with torch.inference_mode():
        assert torch.equal(before, model(x))


def test_same_input_gives_the_same_heatmap():
    model = _model("efficientnet_b0")
    explainer, layer_output = _explainer_and_layer_output(model, "efficientnet_b0", torch.randn(1, 3, 32, 32))
    assert np.array_equal(explainer.heatmap(layer_output, 1), explainer.heatmap(layer_output, 1))


def test_overlay_is_a_jpeg_of_the_display_size_and_tiny_images_are_enlarged():
    big = display_image(Image.new("RGB", (1000, 500)), 256)
    assert big.shape == (128, 256, 3)
    jpeg = overlay_jpeg(big, np.random.rand(32, 32).astype(np.float32))
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    assert Image.open(io.BytesIO(jpeg)).size == (256, 128)
    tiny = overlay_jpeg(display_image(Image.new("RGB", (32, 32)), 256), np.zeros((32, 32), np.float32))
    assert Image.open(io.BytesIO(tiny)).size == (128, 128)
