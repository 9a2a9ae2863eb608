"""Shared fixtures: paths to committed sample images, and tiny random-init checkpoints for plumbing tests."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models import build_model
from utils.config import load_config
from utils.inference.checkpoint import save_checkpoint
from utils.inference.preprocessing import CLASS_NAMES, IMAGENET_MEAN, IMAGENET_STD

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def cifake_test_sample() -> Path:
    """200 real CIFAKE test images (100 REAL, 100 FAKE)."""
    return FIXTURES / "cifake_test_sample"


@pytest.fixture(scope="session")
def cifake_train_sample() -> Path:
    """300 real CIFAKE train images (150 REAL, 150 FAKE)."""
    return FIXTURES / "cifake_train_sample"


def tiny_metadata(name: str, arch: str, arch_args: dict, gradcam_layer: str, **overrides) -> dict:
    """Metadata for an untrained model, complete enough for the loader and the service."""
    metadata = {"name": name, "arch": arch, "arch_args": arch_args, "input_size": 32, "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD), "class_names": list(CLASS_NAMES), "gradcam_layer": gradcam_layer,
                "temperature": 1.0, "threshold": 0.5, "training": {}, "metrics": {"val": None, "test": None}}
    metadata.update(overrides)
    return metadata


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory) -> Path:
    """A weights folder with random-init, small CNN and EfficientNet checkpoints (plumbing tests only)."""
    folder = tmp_path_factory.mktemp("tiny_weights")
    torch.manual_seed(0)
    cnn_args = {"widths": [8, 8, 16, 16]}
    cnn = build_model("artifact_cnn", **cnn_args)
    save_checkpoint(folder / "cnn.pt", cnn, tiny_metadata("cnn", "artifact_cnn", cnn_args, cnn.gradcam_layer))
    effnet_args = load_config()["models"]["efficientnet"]["arch_args"]  # the configured (shipped) arguments
    effnet = build_model("efficientnet_b0", **effnet_args)
    save_checkpoint(folder / "efficientnet_b0.pt", effnet,
                    tiny_metadata("efficientnet", "efficientnet_b0", effnet_args, effnet.gradcam_layer))
    write_tiny_photo_pair(folder)
    return folder


def tiny_photo_metadata(name: str, arch: str, arch_args: dict, gradcam_layer: str, aggregation: str = "mean",
                        **overrides) -> dict:
    """Metadata of an untrained photo model (64 px tiles), complete enough for the loader and the service."""
    return tiny_metadata(name, arch, arch_args, gradcam_layer, input_size=64, profile="photo",
                         tiling={"tile_size": 64, "aggregation": aggregation}, **overrides)


def write_tiny_photo_pair(folder: Path) -> None:
    """Random-init photo CNN and EfficientNet-B0 checkpoints under the configured file names."""
    config = load_config()["models"]
    torch.manual_seed(1)
    cnn_args = {"widths": [8, 8, 16, 16], "first_stage_stride": 2}
    cnn = build_model("artifact_cnn", **cnn_args)
    save_checkpoint(folder / Path(config["cnn_photo"]["output"]).name, cnn,
                    tiny_photo_metadata("cnn", "artifact_cnn", cnn_args, cnn.gradcam_layer))
    effnet_args = config["efficientnet_photo"]["arch_args"]
    effnet = build_model("efficientnet_b0", **effnet_args)
    save_checkpoint(folder / Path(config["efficientnet_photo"]["output"]).name, effnet,
                    tiny_photo_metadata("efficientnet", "efficientnet_b0", effnet_args, effnet.gradcam_layer))


# The Flask app and its test client, as the Flask tutorial's conftest gives them: random-init tiny models loaded
# up front (tests of the plumbing), a fresh app per test module. `make_app` builds one with other settings.
@pytest.fixture(scope="session")
def make_app(tiny_weights_dir):
    from backend import create_app

    def make(**overrides):
        return create_app({"weights_dir": str(tiny_weights_dir), "load_in_background": False, **overrides})
    return make


@pytest.fixture(scope="module")
def app(make_app):
    return make_app()


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def shipped_client():
    """A test client of the app with the weights that ship in saved_models/ (the real models)."""
    from backend import create_app

    return create_app({"load_in_background": False}).test_client()
