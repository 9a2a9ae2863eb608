"""Models: output shapes, and a Grad-CAM layer that gives at least a 4x4 map at the configured input size."""
import pytest
import torch

from models import MODEL_BUILDERS, build_model
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
    assert {"artifact_cnn", "efficientnet_b0"} <= set(MODEL_BUILDERS)


def test_fresh_models_start_undecided():
    """Near-zero heads: an untrained model says p=0.5, so early training starts from loss ln 2."""
    for arch in ("artifact_cnn", "efficientnet_b0"):
        model = build_model(arch).eval()
        with torch.inference_mode():
            p = torch.softmax(model(torch.randn(4, 3, 32, 32)), dim=1)
        assert torch.allclose(p, torch.full_like(p, 0.5), atol=0.05), arch
