"""--adversarial training: settings from config or flags, kept in the checkpoint; works with bf16 and --init-from."""
import argparse

import pytest
import yaml

from utils.config import load_config
from utils.inference.checkpoint import load_checkpoint
from utils.training.folders import get_args_parser, resolve_run_settings
from utils.training.folders import main as train_main

TINY_CNN_ARGS = {"widths": [8, 8, 16, 16]}  # the architecture of conftest's tiny_weights_dir/cnn.pt


@pytest.fixture
def tiny_config(tmp_path, cifake_train_sample):
    config = load_config()
    config["data"].update(train_dir=str(cifake_train_sample), test_dir=None, cache_dir=str(tmp_path / "cache"),
                          val_fraction=0.2)
    config["models"]["cnn"]["arch_args"] = dict(TINY_CNN_ARGS)
    config["models"]["cnn"]["train"].update(epochs=1, batch_size=16, warmup_epochs=0.5, patience=10)
    config["models"]["cnn"]["train"]["adversarial"] = {"fraction": 0.25, "epsilon": "1/255"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _parse(*argv: str) -> argparse.Namespace:
    return get_args_parser("cnn", "test").parse_args(list(argv))


def test_adversarial_settings_come_from_config_and_flags_override_them():
    model_cfg = {"train": {"adversarial": {"fraction": 0.5, "epsilon": "2/255"}}}
    assert resolve_run_settings(_parse(), model_cfg)["adversarial"] is None
    from_config = resolve_run_settings(_parse("--adversarial"), model_cfg)["adversarial"]
    assert from_config["fraction"] == 0.5 and from_config["epsilon"] == pytest.approx(2 / 255)
    assert from_config["epsilon_255"] == 2.0 and from_config["method"] == "fgsm"
    overridden = resolve_run_settings(_parse("--adversarial", "--adv-fraction", "0.3", "--adv-epsilon", "0.01"),
                                      model_cfg)["adversarial"]
    assert overridden["fraction"] == 0.3 and overridden["epsilon"] == 0.01


@pytest.mark.parametrize("argv", [("--adv-epsilon", "2/255"), ("--adversarial", "--adv-fraction", "0"),
                                  ("--adversarial", "--adv-fraction", "1.5")])
def test_adversarial_settings_refuse_meaningless_combinations(argv):
    with pytest.raises(ValueError):
        resolve_run_settings(_parse(*argv), {"train": {"adversarial": {"fraction": 0.5, "epsilon": 0.01}}})


def test_adversarial_flag_needs_settings_from_somewhere():
    with pytest.raises(ValueError, match="fraction and an epsilon"):
        resolve_run_settings(_parse("--adversarial"), {"train": {}})["adversarial"]


def test_bad_epsilon_flag_is_a_usage_error():
    with pytest.raises(SystemExit):
        _parse("--adversarial", "--adv-epsilon", "9")


def test_adversarial_fine_tuning_in_bf16_records_its_settings(tiny_config, tiny_weights_dir, tmp_path):
    output = train_main("cnn", ["--config", str(tiny_config), "--output", str(tmp_path / "cnn.pt"),
                                "--run-dir", str(tmp_path / "run"), "--threads", "1", "--precision", "bf16",
                                "--limit", "64", "--init-from", str(tiny_weights_dir / "cnn.pt"),
                                "--adversarial", "--adv-fraction", "0.5", "--adv-epsilon", "4/255"])
    _, metadata = load_checkpoint(output)
    training = metadata["training"]
    assert training["adversarial"]["fraction"] == 0.5
    assert training["adversarial"]["epsilon"] == pytest.approx(4 / 255)
    assert training["adversarial"]["epsilon_255"] == 4.0
    assert "adversarial" not in training["hyperparameters"]
    assert training["init_from"]["file"] == "cnn.pt" and training["bf16"] is True
    assert training["epochs_run"] == 1 and training["train_images"] == 64


def test_plain_training_records_no_adversarial_settings(tiny_config, tmp_path):
    output = train_main("cnn", ["--config", str(tiny_config), "--output", str(tmp_path / "cnn.pt"),
                                "--run-dir", str(tmp_path / "run"), "--threads", "1", "--precision", "fp32",
                                "--limit", "32"])
    _, metadata = load_checkpoint(output)
    assert metadata["training"]["adversarial"] is None
    assert "adversarial" not in metadata["training"]["hyperparameters"]


def test_init_from_moves_a_model_to_a_new_input_size_and_records_where_it_came_from(tiny_config, tiny_weights_dir,
                                                                                      tmp_path):
    """Fine-tuning at another resolution: the weights fit any input size, so only the architecture must match."""
    config = yaml.safe_load(tiny_config.read_text())
    config["models"]["cnn"]["input_size"] = 48
    config["models"]["cnn"]["arch_args"]["dropout"] = 0.3  # no weights: may differ
    tiny_config.write_text(yaml.safe_dump(config))
    output = train_main("cnn", ["--config", str(tiny_config), "--output", str(tmp_path / "cnn.pt"),
                                "--run-dir", str(tmp_path / "run"), "--threads", "1", "--precision", "fp32",
                                "--limit", "32", "--init-from", str(tiny_weights_dir / "cnn.pt")])
    _, metadata = load_checkpoint(output)
    assert metadata["input_size"] == 48
    assert metadata["training"]["init_from"]["input_size"] == 32
    assert metadata["training"]["init_from"]["arch_args"] == TINY_CNN_ARGS


def test_init_from_refuses_weights_of_another_shape(tiny_config, tiny_weights_dir, tmp_path):
    config = yaml.safe_load(tiny_config.read_text())
    config["models"]["cnn"]["arch_args"]["widths"] = [8, 8, 16, 32]
    tiny_config.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="do not fit"):
        train_main("cnn", ["--config", str(tiny_config), "--output", str(tmp_path / "cnn.pt"),
                           "--run-dir", str(tmp_path / "run"), "--threads", "1", "--limit", "32",
                           "--init-from", str(tiny_weights_dir / "cnn.pt")])
