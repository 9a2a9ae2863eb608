"""Checkpoints: a round trip rebuilds the same model; bad files fail with a message that says what to do."""
import pytest
import torch

from models import build_model
from tests.conftest import tiny_metadata
from utils.errors import ModelUnavailable
from utils.inference.checkpoint import load_checkpoint, save_checkpoint

ARGS = {"widths": [8, 8, 16, 16]}


def _save_tiny(path, **overrides):
    torch.manual_seed(0)
    model = build_model("artifact_cnn", **ARGS)
    save_checkpoint(path, model, tiny_metadata("cnn", "artifact_cnn", ARGS, model.gradcam_layer, **overrides))
    return model


def test_round_trip_restores_weights_metadata_and_outputs(tmp_path):
    original = _save_tiny(tmp_path / "m.pt", temperature=1.7, threshold=0.42).eval()
    loaded, metadata = load_checkpoint(tmp_path / "m.pt")
    assert metadata["temperature"] == 1.7 and metadata["threshold"] == 0.42
    assert metadata["arch_args"] == ARGS and metadata["class_names"] == ["REAL", "FAKE"]
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(original(x), loaded(x))
    assert not loaded.training


def test_file_is_readable_with_weights_only(tmp_path):
    _save_tiny(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert payload["format"] == "cifake-detector-checkpoint"


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(ModelUnavailable, match="not found.*retrain"):
        load_checkpoint(tmp_path / "absent.pt")


def test_corrupt_file_is_reported_as_corrupt(tmp_path):
    _save_tiny(tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "m.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelUnavailable, match="corrupt"):
        load_checkpoint(tmp_path / "m.pt")


def test_foreign_torch_file_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ModelUnavailable, match="not a cifake-detector-checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_weights_that_do_not_match_the_metadata_fail_loudly(tmp_path):
    _save_tiny(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["metadata"]["arch_args"] = {"widths": [8, 8, 16, 32]}
    torch.save(payload, tmp_path / "m.pt")
    with pytest.raises(ModelUnavailable, match="do not match its metadata"):
        load_checkpoint(tmp_path / "m.pt")


def test_incomplete_metadata_is_refused_at_save_time(tmp_path):
    with pytest.raises(ValueError, match="temperature"):
        save_checkpoint(tmp_path / "m.pt", build_model("artifact_cnn", **ARGS), {"name": "cnn"})


def test_saved_metadata_records_the_torch_version_as_plain_text(tmp_path):
    """Regression: torch.__version__ is a TorchVersion, which weights_only=True loading refuses."""
    _save_tiny(tmp_path / "m.pt")
    _, metadata = load_checkpoint(tmp_path / "m.pt")
    assert metadata["torch_version"] == str(torch.__version__)
    assert type(metadata["torch_version"]) is str
