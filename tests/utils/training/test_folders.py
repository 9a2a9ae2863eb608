"""A tiny end-to-end training run on real CIFAKE images: it must learn, resume, and write a usable checkpoint."""
import csv
import json

import numpy as np
import pytest
import torch
import yaml

from utils.config import load_config
from utils.data.folders import load_image_folder
from utils.inference.calibration import p_fake_from_logits
from utils.inference.checkpoint import load_checkpoint
from utils.inference.forward import predict_logits
from utils.inference.preprocessing import PreprocessSpec
from utils.training.folders import get_args_parser, resolve_run_settings
from utils.training.folders import main as train_main


@pytest.fixture
def tiny_config(tmp_path, cifake_train_sample):
    config = load_config()
    config["data"].update(train_dir=str(cifake_train_sample), test_dir=None, cache_dir=str(tmp_path / "cache"),
                          val_fraction=0.2)
    config["models"]["cnn"]["arch_args"].update(widths=[16, 16, 32, 32], dropout=0.0)
    config["models"]["cnn"]["train"].update(epochs=6, batch_size=32, lr=0.003, warmup_epochs=1, patience=10)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_tiny_cnn_training_beats_chance_and_writes_a_complete_checkpoint(tiny_config, tmp_path,
                                                                         cifake_test_sample):
    output = train_main("cnn", ["--config", str(tiny_config), "--output", str(tmp_path / "cnn.pt"),
                                "--run-dir", str(tmp_path / "run"), "--threads", "2", "--precision", "fp32"])
    model, metadata = load_checkpoint(output)
    assert metadata["training"]["train_images"] == 240 and metadata["training"]["val_images"] == 60
    assert metadata["temperature"] > 0 and 0.05 <= metadata["threshold"] <= 0.95
    assert metadata["arch_args"]["first_stage_stride"] == 2, "the configured layout is the one trained"
    assert metadata["input_size"] == 32 and metadata["gradcam_layer"] == "stages.1"

    spec = PreprocessSpec.from_metadata(metadata)
    test = load_image_folder(cifake_test_sample, 32, cache_dir=None, workers=1)
    p_fake = p_fake_from_logits(predict_logits(model, test.images, spec), metadata["temperature"]).numpy()
    accuracy = np.mean((p_fake >= metadata["threshold"]) == test.labels.numpy().astype(bool))
    assert accuracy > 0.6, f"200 unseen images, chance is 0.5, got {accuracy:.3f}"

    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    assert len(rows) == 6 and {"train_loss", "val_loss", "train_accuracy", "val_accuracy"} <= set(rows[0])
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000


@pytest.mark.slow
def test_resume_continues_where_the_run_stopped(tiny_config, tmp_path):
    common = ["--config", str(tiny_config), "--output", str(tmp_path / "cnn.pt"), "--run-dir",
              str(tmp_path / "run"), "--threads", "2", "--precision", "fp32"]
    train_main("cnn", common + ["--epochs", "2"])
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert state["epoch"] == 1
    train_main("cnn", common + ["--epochs", "3", "--resume"])
    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]


def test_precision_is_a_per_model_setting_that_a_flag_overrides():
    config = load_config()
    assert config["models"]["efficientnet"]["train"]["precision"] == "fp32"
    parser = get_args_parser("efficientnet", "test")
    assert parser.parse_args([]).precision is None
    assert parser.parse_args(["--precision", "bf16"]).precision == "bf16"


@pytest.mark.slow
def test_resume_refuses_a_run_started_with_other_settings_and_records_them_in_the_run_folder(tiny_config, tmp_path):
    common = ["--config", str(tiny_config), "--output", str(tmp_path / "cnn.pt"), "--run-dir",
              str(tmp_path / "run"), "--threads", "2", "--precision", "fp32", "--epochs", "1"]
    train_main("cnn", common)
    recorded = json.loads((tmp_path / "run" / "settings.json").read_text())
    assert recorded["hyperparameters"]["epochs"] == 1 and recorded["adversarial"] is None
    with pytest.raises(ValueError, match="hyperparameters.lr"):
        train_main("cnn", common + ["--resume", "--lr", "0.01"])
    assert json.loads((tmp_path / "run" / "settings.json").read_text()) == recorded, "the record is left alone"


def test_settings_resolve_flag_then_config_then_default_and_are_read_only():
    args = get_args_parser("cnn", "test").parse_args(["--lr", "0.5"])
    settings = resolve_run_settings(args, {"train": {"lr": 0.1, "epochs": 4, "adversarial": {"fraction": 0.5}}})
    assert settings.hyperparameters["lr"] == 0.5, "a flag wins over the config"
    assert settings.hyperparameters["epochs"] == 4, "the config wins over the default"
    assert settings.hyperparameters["precision"] == "auto", "the default fills what neither gives"
    assert "adversarial" not in settings.hyperparameters and settings["adversarial"] is None
    with pytest.raises(TypeError):
        settings.hyperparameters["lr"] = 1.0
    longer = resolve_run_settings(get_args_parser("cnn", "test").parse_args(["--lr", "0.5", "--epochs", "9"]),
                                  {"train": {"lr": 0.1, "epochs": 4}})
    assert longer.differences(settings.to_json()) == [], "a resumed run may be made longer"
    other = {**settings.to_json(), "hyperparameters": {**settings.hyperparameters, "lr": 0.1}}
    assert settings.differences(other) == ["hyperparameters.lr"]
