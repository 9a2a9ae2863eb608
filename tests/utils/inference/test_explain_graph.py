"""The rewritten suffix Grad-CAM differentiates is the same function, with the same gradients, as the original."""
import torch
from torch import nn

from models import build_model, split_at_gradcam_layer
from utils.inference.explain_graph import PointwiseLinear, SmallDepthwise, explain_graph, rewrite_for_explanation


def _trained_looking_efficientnet() -> torch.nn.Module:
    """Random weights and random batch-norm statistics, so folding the norms is not a no-op."""
    torch.manual_seed(0)
    model = build_model("efficientnet_b0").eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
    return model.requires_grad_(False)


def _output_and_gradient(module: nn.Module, layer_output: torch.Tensor):
    leaf = layer_output.clone().requires_grad_(True)
    logits = module(leaf)
    (gradient,) = torch.autograd.grad(logits[:, 1].sum(), leaf)
    return logits, gradient


def test_the_rewritten_suffix_matches_the_original_in_value_and_gradient():
    split = split_at_gradcam_layer("efficientnet_b0", _trained_looking_efficientnet())
    with torch.no_grad():
        layer_output = split.prefix(torch.randn(2, 3, 32, 32))
    rewritten = rewrite_for_explanation(split.suffix, layer_output[:1])
    kinds = {type(m) for m in rewritten.modules()}
    assert PointwiseLinear in kinds and SmallDepthwise in kinds and nn.BatchNorm2d not in kinds
    traced = explain_graph(split.suffix, layer_output[:1])
    # one image (the traced shape) and two (the eager fallback)
    for inputs in (layer_output[:1], layer_output):
        expected_logits, expected_gradient = _output_and_gradient(split.suffix, inputs)
        for fast in (rewritten, traced):
            logits, gradient = _output_and_gradient(fast, inputs)
            torch.testing.assert_close(logits, expected_logits, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(gradient, expected_gradient, rtol=1e-4, atol=1e-7)


def test_the_original_suffix_is_left_untouched():
    split = split_at_gradcam_layer("efficientnet_b0", _trained_looking_efficientnet())
    before = {name: tensor.clone() for name, tensor in split.suffix.state_dict().items()}
    with torch.no_grad():
        explain_graph(split.suffix, split.prefix(torch.zeros(1, 3, 32, 32)))
    after = split.suffix.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_a_depthwise_conv_on_another_map_size_falls_back_to_the_convolution():
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 6, kernel_size=3, padding=1, groups=6, bias=True).eval()
    dense = SmallDepthwise(conv, (2, 2))
    for shape in [(1, 6, 2, 2), (3, 6, 5, 5)]:
        x = torch.randn(shape)
        torch.testing.assert_close(dense(x), conv(x), rtol=1e-5, atol=1e-6)
