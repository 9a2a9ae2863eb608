"""The photo path end to end: augmentation, tile aggregation, training, and the same tiles in training and serving."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from backend.detector import Detector
from tests.conftest import FIXTURES
from utils.config import load_config
from utils.data.photo_augment import AugmentSettings, augment_photo, random_region
from utils.data.photo_corpus import read_manifest
from utils.data.photo_dataset import tile_crops
from utils.imaging.decoding import decode_image
from utils.inference.checkpoint import load_checkpoint
from utils.inference.preprocessing import normalize_batch
from utils.inference.tile_aggregation import aggregate_margins, fit_aggregation, p_fake_from_margin

PHOTO_SAMPLE = FIXTURES / "photo_val_sample"


def test_the_configured_augmentation_parses_and_is_recorded():
    section = load_config()["models"]["cnn_photo"]["train"]["augment"]
    settings = AugmentSettings.from_config(section)
    assert settings.to_metadata() == {**section, **{k: list(v) for k, v in section.items() if isinstance(v, list)}}
    with pytest.raises(ValueError, match="unknown"):
        AugmentSettings.from_config({"p_sharpen": 0.5})


def test_augmentation_is_seeded_keeps_a_tile_and_does_nothing_at_probability_zero():
    crop = Image.open(next((PHOTO_SAMPLE / "REAL").iterdir())).convert("RGB")
    settings = AugmentSettings(p_resize=1.0, resize_range=(0.3, 0.31), p_blur=1.0, p_jpeg=1.0)
    first = np.asarray(augment_photo(crop, settings, 88, np.random.default_rng(5)))
    again = np.asarray(augment_photo(crop, settings, 88, np.random.default_rng(5)))
    assert np.array_equal(first, again) and min(first.shape[:2]) >= 88
    off = AugmentSettings(p_resize=0.0, p_blur=0.0, p_jpeg=0.0)
    assert np.array_equal(np.asarray(augment_photo(crop, off, 88, np.random.default_rng(0))), np.asarray(crop))
    assert random_region(first, 64, np.random.default_rng(0)).shape == (64, 64, 3)


def test_aggregation_rules_and_the_fitted_choice():
    margins = np.array([-2.0, 0.0, 1.0, 5.0])
    assert aggregate_margins(margins, "mean") == 1.0 and aggregate_margins(margins, "max") == 5.0
    assert aggregate_margins(margins, "median") == 0.5 and aggregate_margins(margins, "upper_half_mean") == 3.0
    assert p_fake_from_margin(0.0, 2.0) == 0.5 and p_fake_from_margin(2.0, 2.0) == pytest.approx(1 / (1 + np.e ** -1))
    # FAKE images carry one strongly fake tile among neutral ones: "max" separates them, "mean" barely does
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 200)
    margins = rng.normal(0, 1.5, (400, 8))
    margins[labels == 1, 0] += 8.0
    owner = np.repeat(np.arange(400), 8)
    fitted = fit_aggregation(margins.ravel(), owner, labels)
    assert fitted["rule"] == "max" and fitted["temperature"] > 0
    assert set(fitted["candidates"]) == {"mean", "median", "max", "upper_half_mean"}


def test_training_and_serving_feed_the_model_identical_tensors_for_the_same_photo(tiny_weights_dir):
    """The validation tiles training calibrates on are exactly what the service sends a photo model."""
    records = read_manifest(PHOTO_SAMPLE)[:3]
    detector = Detector.from_weights_dir(tiny_weights_dir, {"cnn": "cnn.pt", "efficientnet": "efficientnet_b0.pt",
                                                            "cnn_photo": "cnn_photo.pt"},
                                         runtime="torch", explanations=False, max_tiles=16)
    photo_model = detector.pairs["photo"][0]
    seen = []
    real_forward = photo_model.forward
    photo_model.forward = lambda batch: (seen.append(batch.copy()), real_forward(batch))[1]
    spec = photo_model.spec
    for record in records:
        data = record.path.read_bytes()
        detector.predict([decode_image(data)], [data], explain=False)
        trained = tile_crops([record], spec.input_size, 16)
        expected = normalize_batch(torch.from_numpy(trained.tiles), spec).contiguous().numpy()
        assert np.array_equal(seen[-1], expected)


@pytest.mark.slow
def test_a_short_photo_run_writes_a_checkpoint_the_service_loads(tmp_path, tiny_weights_dir):
    from utils.training import photos as photo_training

    output = photo_training.main("cnn_photo", [
        "--profile", "photo", "--data-dir", str(PHOTO_SAMPLE), "--epochs", "2", "--samples-per-epoch", "64",
        "--batch-size", "32", "--variants", "1", "--run-dir", str(tmp_path / "run"), "--no-cache", "--workers", "1",
        "--output", str(tmp_path / "weights" / "cnn_photo.pt"), "--threads", "1", "--input-residual"])
    model, metadata = load_checkpoint(output)
    assert metadata["profile"] == "photo" and metadata["input_size"] == 64
    assert metadata["arch_args"]["input_residual"] is True
    assert metadata["tiling"]["aggregation"] in {"mean", "median", "max", "upper_half_mean"}
    assert metadata["training"]["split"]["by"] == "group" and metadata["training"]["epochs_run"] == 2
    assert metadata["temperature"] > 0 and 0 < metadata["threshold"] < 1
    for name in ("cnn.pt", "efficientnet_b0.pt"):
        (tmp_path / "weights" / name).write_bytes((tiny_weights_dir / name).read_bytes())
    detector = Detector.from_weights_dir(tmp_path / "weights", {
        "cnn": "cnn.pt", "efficientnet": "efficientnet_b0.pt", "cnn_photo": "cnn_photo.pt"}, runtime="torch")
    data = next((PHOTO_SAMPLE / "FAKE").iterdir()).read_bytes()
    result = detector.predict([decode_image(data)], [data])[0]
    assert result["profile"] == "photo" and result["tiles"] == 16
    assert result["explanation"]["heatmap"]["tiles"]


def test_a_photo_run_can_continue_from_a_photo_checkpoint_and_records_its_lineage(tmp_path):
    from utils.training import photos as photo_training

    common = ["--profile", "photo", "--data-dir", str(PHOTO_SAMPLE), "--samples-per-epoch", "64", "--batch-size", "32",
              "--variants", "1", "--no-cache", "--workers", "1", "--threads", "1", "--input-residual"]
    first = photo_training.main("cnn_photo", [*common, "--epochs", "1", "--run-dir", str(tmp_path / "first"),
                                              "--output", str(tmp_path / "first.pt")])
    first_model, first_metadata = load_checkpoint(first)
    second = photo_training.main("cnn_photo", [*common, "--epochs", "1", "--run-dir", str(tmp_path / "second"),
                                               "--output", str(tmp_path / "second.pt"), "--init-from", str(first),
                                               "--precision", "bf16"])
    _, metadata = load_checkpoint(second)
    training = metadata["training"]
    assert training["init_from"]["file"] == "first.pt" and training["init_from"]["epochs_run"] == 1
    assert training["bf16"] is True and training["hyperparameters"]["precision"] == "bf16"
    assert training["total_train_seconds"] > training["train_seconds"]
    assert training["total_train_seconds"] >= first_metadata["training"]["total_train_seconds"]


def test_a_photo_run_refuses_to_start_from_another_architecture(tmp_path, tiny_weights_dir):
    from utils.training import photos as photo_training

    with pytest.raises(ValueError, match="--init-from"):
        photo_training.main("cnn_photo", [
            "--profile", "photo", "--data-dir", str(PHOTO_SAMPLE), "--epochs", "1", "--samples-per-epoch", "32",
            "--batch-size", "32", "--variants", "1", "--no-cache", "--workers", "1", "--threads", "1",
            "--run-dir", str(tmp_path / "run"), "--output", str(tmp_path / "out.pt"),
            "--init-from", str(tiny_weights_dir / "efficientnet_b0.pt")])
