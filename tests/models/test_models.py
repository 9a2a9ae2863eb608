"""Models: output shapes, and a Grad-CAM layer that gives at least a 4x4 map at the configured input size."""
import pytest
import torch

from models import REGISTRY, build_model, split_at_gradcam_layer
from utils.config import load_config

CONFIG = load_config()
MODEL_SECTIONS = sorted(CONFIG["models"])


@pytest.mark.parametrize("section", MODEL_SECTIONS)
def test_model_maps_a_batch_to_two_logits(section):
    cfg = CONFIG["models"][section]
    model = build_model(cfg["arch"], **cfg["arch_args"]).eval()
    with torch.inference_mode():
        out = model(torch.randn(3, 3, cfg["input_size"], cfg["input_size"]))
    assert out.shape == (3, 2)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("section", MODEL_SECTIONS)
def test_gradcam_layer_gives_at_least_4x4_at_configured_input_size(section):
    cfg = CONFIG["models"][section]
    model = build_model(cfg["arch"], **cfg["arch_args"]).eval()
    layer = model.get_submodule(model.gradcam_layer)
    seen = {}
    handle = layer.register_forward_hook(lambda _m, _i, output: seen.update(shape=output.shape))
    with torch.inference_mode():
        model(torch.randn(1, 3, cfg["input_size"], cfg["input_size"]))
    handle.remove()
    assert seen["shape"][-2] >= 4 and seen["shape"][-1] >= 4, seen["shape"]


def test_unknown_architecture_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match="artifact_cnn"):
        build_model("resnet9000")


def test_registry_holds_both_project_models():
    assert {"artifact_cnn", "efficientnet_b0"} <= set(REGISTRY)


@pytest.mark.parametrize("arch", sorted(REGISTRY))
def test_each_registry_record_names_the_layer_its_model_explains_and_cuts_there(arch):
    record = REGISTRY[arch]
    model = build_model(arch).eval()
    assert record.gradcam_layer() == model.gradcam_layer
    split = split_at_gradcam_layer(arch, model)
    x = torch.randn(2, 3, record.input_size, record.input_size)
    with torch.inference_mode():
        assert torch.allclose(split.suffix(split.prefix(x)), model(x), atol=1e-5)


@pytest.mark.parametrize("section", MODEL_SECTIONS)
def test_a_config_section_starts_from_its_architectures_defaults_and_overrides_them(section):
    cfg = CONFIG["models"][section]
    defaults = REGISTRY[cfg["arch"]].default_cfg()
    assert cfg["mean"] == defaults["mean"] and cfg["std"] == defaults["std"]
    assert cfg["input_size"] == (64 if section.endswith("_photo") else defaults["input_size"])


def test_fresh_models_start_undecided():
    """Near-zero heads: an untrained model says p=0.5, so early training starts from loss ln 2."""
    for arch in ("artifact_cnn", "efficientnet_b0"):
        model = build_model(arch).eval()
        with torch.inference_mode():
            p = torch.softmax(model(torch.randn(4, 3, 32, 32)), dim=1)
        assert torch.allclose(p, torch.full_like(p, 0.5), atol=0.05), arch


@pytest.mark.parametrize("first_stage_stride, layer, side", [(1, "stages.2", 8), (2, "stages.1", 8)])
def test_custom_cnn_explains_an_8x8_layer_in_either_layout(first_stage_stride, layer, side):
    model = build_model("artifact_cnn", first_stage_stride=first_stage_stride).eval()
    assert model.gradcam_layer == layer
    seen = {}
    model.get_submodule(layer).register_forward_hook(lambda _m, _i, output: seen.update(shape=output.shape))
    with torch.inference_mode():
        model(torch.randn(1, 3, 32, 32))
    assert seen["shape"][-2:] == (side, side)


def test_stride_two_layout_costs_a_quarter_of_the_full_resolution_one():
    """The reason for the shipped layout: same parameters, about 4x fewer multiply-adds at 32 px."""
    from torch.utils.flop_counter import FlopCounterMode

    def flops(model):
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model.eval()(torch.randn(1, 3, 32, 32))
        return counter.get_total_flops()

    full, strided = build_model("artifact_cnn", first_stage_stride=1), build_model("artifact_cnn", first_stage_stride=2)
    assert sum(p.numel() for p in full.parameters()) == sum(p.numel() for p in strided.parameters())
    assert flops(strided) < flops(full) / 3.5


def test_custom_cnn_refuses_an_unsupported_stride():
    with pytest.raises(ValueError, match="first_stage_stride"):
        build_model("artifact_cnn", first_stage_stride=4)


def test_upsampled_efficientnet_is_torchvisions_network_behind_a_weightless_2x_upsampling():
    """`upsample: 2` (an option; the shipped model has none): the same weights as torchvision's B0, an 8x8 Grad-CAM
    map at 32 px instead of 4x4, and the same output as torchvision's B0 run on the upsampled image."""
    from torch.nn import functional as F
    from torchvision.models import efficientnet_b0

    torch.manual_seed(0)
    model = build_model("efficientnet_b0", upsample=2).eval()
    plain = efficientnet_b0(weights=None, num_classes=2).eval()
    plain.load_state_dict(model.state_dict())  # strict: the upsampling adds no weights
    seen = {}
    model.get_submodule(model.gradcam_layer).register_forward_hook(lambda _m, _i, o: seen.update(shape=o.shape))
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        out = model(x)
        reference = plain(F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False))
    assert seen["shape"][-2:] == (8, 8)
    assert torch.allclose(out, reference, atol=1e-6)


@pytest.mark.parametrize("shape, factor", [((2, 3, 32, 32), 2), ((1, 3, 20, 48), 2), ((1, 1, 7, 5), 3)])
def test_input_upsampling_matrices_reproduce_pytorch_bicubic(shape, factor):
    from torch.nn import functional as F

    from models.efficientnet import InputUpsample

    x = torch.randn(*shape)
    expected = F.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False)
    assert torch.allclose(InputUpsample(factor)(x), expected, atol=1e-5)
