"""The weights committed in saved_models/ are real: each classifies 200 CIFAKE test images at >= 95%."""
import numpy as np
import pytest

from utils.config import load_config, project_path
from utils.data.folders import load_image_folder
from utils.inference.calibration import p_fake_from_logits
from utils.inference.checkpoint import load_checkpoint
from utils.inference.forward import predict_logits
from utils.inference.preprocessing import PreprocessSpec

SECTIONS = {name: section for name, section in load_config()["models"].items()
            if not name.endswith("_photo")}  # the CIFAKE pair; tests/saved_models/test_photo_pair.py: the photo one


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_shipped_model_is_accurate_on_the_committed_sample(section, cifake_test_sample):
    model, metadata = load_checkpoint(project_path(SECTIONS[section]["output"]))
    spec = PreprocessSpec.from_metadata(metadata)
    data = load_image_folder(cifake_test_sample, spec.input_size, cache_dir=None, workers=1)
    p_fake = p_fake_from_logits(predict_logits(model, data.images, spec), metadata["temperature"]).numpy()
    accuracy = np.mean((p_fake >= metadata["threshold"]) == data.labels.numpy().astype(bool))
    assert accuracy >= 0.95, f"{section}: {accuracy:.3f}"


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_shipped_checkpoint_carries_its_provenance_and_calibration(section):
    _, metadata = load_checkpoint(project_path(SECTIONS[section]["output"]))
    assert metadata["training"]["train_images"] >= 50000
    assert metadata["metrics"]["val"]["ece"] < 0.05
    assert metadata["metrics"]["test"]["counts"]["total"] == 20000
    assert metadata["created_at"] and "hyperparameters" in metadata["training"]
