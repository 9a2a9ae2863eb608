"""The hand-written backward pass (utils/inference/gradient_graph.py) gives autograd's gradient, in PyTorch and in ONNX Runtime."""
import numpy as np
import pytest
import torch
from torch import nn

from models import build_model, split_at_gradcam_layer
from tests.utils.inference.test_explain_graph import _output_and_gradient, _trained_looking_efficientnet
from utils.inference.gradient_graph import GradientGraph, UnsupportedLayer, check_supported
from utils.inference.runtime import OnnxGradient


@pytest.fixture(scope="module")
def efficientnet_suffix_and_layer_output():
    model = _trained_looking_efficientnet()
    with torch.no_grad():
        model.classifier[1].weight.normal_()  # a head of real size, so the gradients are far from zero
    split = split_at_gradcam_layer("efficientnet_b0", model)
    with torch.no_grad():
        layer_output = split.prefix(torch.randn(2, 3, 32, 32))
    return split.suffix, layer_output


@pytest.mark.parametrize("class_index", [0, 1])
def test_gradient_graph_equals_autograd_on_efficientnet(efficientnet_suffix_and_layer_output, class_index):
    suffix, layer_output = efficientnet_suffix_and_layer_output
    graph = GradientGraph(suffix, layer_output[:1])
    target = torch.zeros(2, 2)
    target[:, class_index] = 1
    with torch.no_grad():
        logits, gradient = graph(layer_output, target)
    leaf = layer_output.clone().requires_grad_(True)
    expected_logits = suffix(leaf)
    (expected,) = torch.autograd.grad(expected_logits[:, class_index].sum(), leaf)
    torch.testing.assert_close(logits, expected_logits.detach(), rtol=1e-4, atol=1e-5)
    scale = expected.abs().max().item()
    assert scale > 0, "a zero gradient would make the comparison meaningless"
    torch.testing.assert_close(gradient, expected, rtol=1e-4, atol=1e-4 * scale)


def test_onnx_runtime_runs_the_same_gradient(efficientnet_suffix_and_layer_output):
    suffix, layer_output = efficientnet_suffix_and_layer_output
    one = layer_output[:1]
    gradient = OnnxGradient(suffix, one, num_classes=2, threads=1)(one.numpy(), class_index=1)
    _, expected = _output_and_gradient(suffix, one)  # d(logit 1)/d(layer output)
    scale = np.abs(expected.numpy()).max()
    np.testing.assert_allclose(gradient, expected.numpy(), rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("first_stage_stride", [2, 1])
def test_gradient_graph_equals_autograd_on_the_custom_cnn(first_stage_stride):
    """Max-pooling, GELU, residual stages and global max+mean pooling, in PyTorch and in ONNX Runtime."""
    torch.manual_seed(0)
    model = build_model("artifact_cnn", first_stage_stride=first_stage_stride).eval()
    with torch.no_grad():
        model.head[1].weight.normal_()
    split = split_at_gradcam_layer("artifact_cnn", model.requires_grad_(False))
    with torch.no_grad():
        layer_output = split.prefix(torch.randn(1, 3, 32, 32))
    _, expected = _output_and_gradient(split.suffix, layer_output)
    scale = expected.abs().max().item()
    assert scale > 0
    with torch.no_grad():
        _, gradient = GradientGraph(split.suffix, layer_output)(layer_output, torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(gradient, expected, rtol=1e-4, atol=1e-4 * scale)
    onnx_gradient = OnnxGradient(split.suffix, layer_output, num_classes=2, threads=1)(layer_output.numpy(), 1)
    np.testing.assert_allclose(onnx_gradient, expected.numpy(), rtol=1e-4, atol=1e-4 * scale)


def test_a_layer_without_a_rule_is_refused_by_name():
    with pytest.raises(UnsupportedLayer, match="LeakyReLU"):
        check_supported(nn.Sequential(nn.Conv2d(3, 4, 3), nn.LeakyReLU(), nn.Flatten(), nn.Linear(4, 2)))
    with pytest.raises(UnsupportedLayer, match="max-pooling"):
        check_supported(nn.MaxPool2d(3, stride=2))


def test_building_the_graph_leaves_the_served_suffix_untouched(efficientnet_suffix_and_layer_output):
    suffix, layer_output = efficientnet_suffix_and_layer_output
    before = {name: tensor.clone() for name, tensor in suffix.state_dict().items()}
    GradientGraph(suffix, layer_output[:1])
    assert all(torch.equal(before[name], tensor) for name, tensor in suffix.state_dict().items())
    assert any(isinstance(m, nn.BatchNorm2d) for m in suffix.modules()), "the served suffix keeps its batch norms"
