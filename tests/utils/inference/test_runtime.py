"""The fast serving path gives the same answers as plain PyTorch.

Serving cuts each model at its Grad-CAM layer (so Grad-CAM reuses the forward pass) and runs the forward pass in
ONNX Runtime. Neither may change a result: probabilities agree to float32 rounding, and every label, verdict,
Grad-CAM winner and heatmap is the same.
"""
import logging
import sys

import numpy as np
import pytest
import torch

from backend.detector import Detector
from backend.settings import serving_settings
from models import build_model, split_at_gradcam_layer
from utils.data.folders import scan_image_folder
from utils.imaging.decoding import decode_image
from utils.inference.runtime import OnnxForward, TorchForward, build_forward

# Both layouts of the custom CNN: stride 2 (shipped) and stride 1 (older checkpoints, still loadable); EfficientNet-B0
# as shipped and with the optional 2x input upsampling.
VARIANTS = {"artifact_cnn": ("artifact_cnn", {"widths": [8, 8, 16, 16], "first_stage_stride": 2}),
            "artifact_cnn-stride1": ("artifact_cnn", {"widths": [8, 8, 16, 16], "first_stage_stride": 1}),
            "efficientnet_b0": ("efficientnet_b0", {}),
            "efficientnet_b0-upsample2": ("efficientnet_b0", {"upsample": 2})}


def _random_model(variant: str) -> torch.nn.Module:
    torch.manual_seed(0)
    arch, arch_args = VARIANTS[variant]
    return build_model(arch, **arch_args).eval().requires_grad_(False)


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_split_model_is_the_model_and_its_prefix_is_the_grad_cam_layer(variant):
    model = _random_model(variant)
    split = split_at_gradcam_layer(VARIANTS[variant][0], model)
    x = torch.randn(3, 3, 32, 32)
    captured = []
    hook = model.get_submodule(model.gradcam_layer).register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.inference_mode():
        whole = model(x)
        layer_output = split.prefix(x)
        assert torch.equal(split.suffix(layer_output), whole)
    hook.remove()
    assert torch.equal(layer_output, captured[0])
    assert min(layer_output.shape[-2:]) >= 4, "Grad-CAM needs at least a 4x4 map at 32 px"


@pytest.mark.parametrize("variant", VARIANTS)
def test_onnx_runtime_matches_pytorch_on_logits_and_layer_output(variant):
    split = split_at_gradcam_layer(VARIANTS[variant][0], _random_model(variant))
    batch = torch.randn(5, 3, 32, 32).numpy()
    onnx_logits, onnx_layer = OnnxForward(split, 32, threads=1)(batch)
    torch_logits, torch_layer = TorchForward(split)(batch)
    assert onnx_logits.shape == (5, 2) and onnx_layer.shape == torch_layer.shape
    np.testing.assert_allclose(onnx_logits, torch_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(onnx_layer, torch_layer, rtol=1e-4, atol=1e-4)


def test_missing_onnx_runtime_falls_back_to_pytorch_with_a_warning(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` raise ImportError
    split = split_at_gradcam_layer("artifact_cnn", _random_model("artifact_cnn"))
    with caplog.at_level(logging.WARNING):
        forward = build_forward(split, 32, "onnxruntime")
    assert forward.name == "torch" and "ONNX Runtime is unavailable" in caplog.text


def test_an_unknown_runtime_is_refused():
    with pytest.raises(ValueError, match="unknown runtime"):
        build_forward(split_at_gradcam_layer("artifact_cnn", _random_model("artifact_cnn")), 32, "tensorrt")


@pytest.fixture(scope="module")
def sample_images(cifake_test_sample):
    paths = [p for p, _ in scan_image_folder(cifake_test_sample)][::4]  # 50 images, both classes
    photos = cifake_test_sample.parent / "photo_val_sample"
    paths += [p for p, _ in scan_image_folder(photos)][::8]  # 8 photo crops: the photo pair on 16 tiles each
    raw = [p.read_bytes() for p in paths]
    return [decode_image(data) for data in raw], raw


def test_shipped_models_give_identical_results_in_onnx_runtime_and_pytorch(sample_images):
    decoded, raw = sample_images
    settings = serving_settings()
    results = {runtime: Detector.from_weights_dir(settings["weights_dir"], settings["model_files"], runtime=runtime,
                                                  threads=1).predict(decoded, raw, explain=True)
               for runtime in ("onnxruntime", "torch")}
    for fast, plain in zip(results["onnxruntime"], results["torch"]):
        assert fast["verdict"]["label"] == plain["verdict"]["label"]
        assert fast["verdict"]["uncertain"] == plain["verdict"]["uncertain"]
        assert abs(fast["verdict"]["p_fake"] - plain["verdict"]["p_fake"]) <= 1e-5
        for fast_model, plain_model in zip(fast["models"], plain["models"]):
            assert fast_model["label"] == plain_model["label"]
            assert abs(fast_model["p_fake"] - plain_model["p_fake"]) <= 1e-5
        assert fast["explanation"]["model"] == plain["explanation"]["model"]
        assert fast["explanation"]["target"] == plain["explanation"]["target"]
        # heatmap values are rounded to 3 decimals in the response, so allow one unit of the last place
        np.testing.assert_allclose(fast["explanation"]["heatmap"]["values"], plain["explanation"]["heatmap"]["values"],
                                   atol=1.001e-3)


def test_models_exported_from_several_threads_at_once_all_load():
    """A detector loading in the background while another loads in the foreground (the service's holder, the
    tests) exports ONNX graphs at the same time; torch.onnx.export keeps global state, so without the export lock
    one of them fails with "GLOBALS.in_onnx_export must be False" and falls back to PyTorch."""
    from concurrent.futures import ThreadPoolExecutor

    splits = [split_at_gradcam_layer("artifact_cnn", _random_model("artifact_cnn").eval()) for _ in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        forwards = list(pool.map(lambda split: build_forward(split, 32, "onnxruntime", threads=1), splits))
    assert all(isinstance(forward, OnnxForward) for forward in forwards)
