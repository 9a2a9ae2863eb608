"""--distill-from: a trained detector's soft predictions guide training; the loss, the settings and the teacher."""
import argparse
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from models import build_model
from tests.conftest import tiny_metadata
from utils.config import load_config
from utils.data.folders import load_image_folder
from utils.inference.checkpoint import load_checkpoint, save_checkpoint
from utils.inference.forward import predict_logits
from utils.inference.preprocessing import PreprocessSpec, normalize_batch
from utils.training.distillation import distillation_loss, load_teacher, teacher_logits
from utils.training.folders import get_args_parser, resolve_run_settings
from utils.training.folders import main as train_main

TINY_CNN_ARGS = {"widths": [8, 8, 16, 16]}  # the architecture of conftest's tiny_weights_dir/cnn.pt


def _parse(*argv: str) -> argparse.Namespace:
    return get_args_parser("efficientnet", "test").parse_args(list(argv))


def test_loss_is_the_kl_divergence_from_the_teacher():
    # teacher p = (0.75, 0.25), student p = (0.5, 0.5): KL = 0.75 ln 1.5 + 0.25 ln 0.5
    teacher = torch.tensor([[math.log(3.0), 0.0]])
    student = torch.zeros(1, 2)
    assert distillation_loss(student, teacher, 1.0).item() == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    assert distillation_loss(teacher, teacher, 1.0).item() == pytest.approx(0.0, abs=1e-7)


def test_loss_softens_both_sides_and_scales_by_the_squared_temperature():
    teacher, student = torch.tensor([[2.0, -1.0], [0.5, 0.0]]), torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    t = 3.0
    p_teacher = F.softmax(teacher / t, dim=1)
    expected = (p_teacher * (p_teacher.log() - F.log_softmax(student / t, dim=1))).sum(1).mean() * t * t
    assert distillation_loss(student, teacher, t).item() == pytest.approx(expected.item(), rel=1e-6)


def test_settings_come_from_config_and_flags_override_them():
    model_cfg = {"train": {"distillation": {"weight": 0.7, "temperature": 2.0}}}
    assert resolve_run_settings(_parse(), model_cfg)["distillation"] is None
    from_config = resolve_run_settings(_parse("--distill-from", "teacher.pt"), model_cfg)["distillation"]
    assert from_config == {"teacher": "teacher.pt", "weight": 0.7, "temperature": 2.0}
    overridden = resolve_run_settings(_parse("--distill-from", "t.pt", "--distill-weight", "1",
                                              "--distill-temperature", "4"), model_cfg)["distillation"]
    assert overridden["weight"] == 1.0 and overridden["temperature"] == 4.0


@pytest.mark.parametrize("argv", [("--distill-weight", "0.5"), ("--distill-from", "t.pt", "--distill-weight", "0"),
                                  ("--distill-from", "t.pt", "--distill-weight", "1.5"),
                                  ("--distill-from", "t.pt", "--distill-temperature", "0")])
def test_settings_refuse_meaningless_combinations(argv):
    with pytest.raises(ValueError):
        resolve_run_settings(_parse(*argv), {"train": {}})["distillation"]


def test_teacher_with_another_normalisation_sees_the_same_pixels(tmp_path, cifake_test_sample):
    torch.manual_seed(0)
    model = build_model("artifact_cnn", **TINY_CNN_ARGS)
    torch.nn.init.normal_(model.head[1].weight)  # the head starts at zero; give the teacher something to say
    teacher_spec = PreprocessSpec(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    save_checkpoint(tmp_path / "teacher.pt", model,
                    tiny_metadata("cnn", "artifact_cnn", TINY_CNN_ARGS, model.gradcam_layer,
                                  **teacher_spec.to_metadata()))
    student_spec = PreprocessSpec(32)  # ImageNet mean/std
    teacher = load_teacher(tmp_path / "teacher.pt", student_spec, torch.device("cpu"))
    images = load_image_folder(cifake_test_sample, 32, cache_dir=None, workers=1).images[:16]

    through_student = teacher_logits(teacher, normalize_batch(images, student_spec), student_spec, bf16=False)
    direct = predict_logits(teacher.model, images, teacher_spec)
    assert torch.allclose(through_student, direct, atol=1e-4)
    assert through_student.std(0).abs().min() > 0, "the teacher must not answer the same for every image"
    assert not any(p.requires_grad for p in teacher.model.parameters())


def test_teacher_of_another_input_size_is_refused(tiny_weights_dir):
    with pytest.raises(ValueError, match="same input size"):
        load_teacher(tiny_weights_dir / "cnn.pt", PreprocessSpec(64), torch.device("cpu"))


def test_missing_or_corrupt_teacher_is_a_user_error_naming_the_flag(tmp_path):
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    for name, reason in (("missing.pt", "not found"), ("corrupt.pt", "corrupt")):
        with pytest.raises(ValueError, match=f"--distill-from .*{name}: .*{reason}"):
            load_teacher(tmp_path / name, PreprocessSpec(32), torch.device("cpu"))


@pytest.fixture
def tiny_config(tmp_path, cifake_train_sample):
    config = load_config()
    config["data"].update(train_dir=str(cifake_train_sample), test_dir=None, cache_dir=str(tmp_path / "cache"),
                          val_fraction=0.2)
    config["models"]["cnn"]["arch_args"] = dict(TINY_CNN_ARGS, dropout=0.0)
    config["models"]["cnn"]["train"].update(epochs=3, batch_size=16, lr=0.003, warmup_epochs=0.5, patience=10)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _mean_kl_to_teacher(checkpoint, teacher_logits_, images) -> float:
    model, metadata = load_checkpoint(checkpoint)
    student = predict_logits(model, images, PreprocessSpec.from_metadata(metadata))
    return distillation_loss(student, teacher_logits_, 1.0).item()


def test_a_fully_distilled_student_follows_its_teacher_not_the_labels(tiny_config, tiny_weights_dir, tmp_path,
                                                                      cifake_train_sample):
    """The random teacher's zero-initialised head answers p = 0.5 for everything; labels say otherwise."""
    teacher_path = tiny_weights_dir / "cnn.pt"
    common = ["--config", str(tiny_config), "--threads", "1", "--precision", "fp32"]
    distilled = train_main("cnn", common + ["--output", str(tmp_path / "kd.pt"), "--run-dir", str(tmp_path / "kd"),
                                            "--distill-from", str(teacher_path), "--distill-weight", "1"])
    plain = train_main("cnn", common + ["--output", str(tmp_path / "plain.pt"), "--run-dir", str(tmp_path / "pl")])

    images = load_image_folder(cifake_train_sample, 32, cache_dir=None, workers=1).images
    teacher, metadata = load_checkpoint(teacher_path)
    answers = predict_logits(teacher, images, PreprocessSpec.from_metadata(metadata))
    assert np.allclose(F.softmax(answers, 1).numpy(), 0.5)
    kl_distilled = _mean_kl_to_teacher(distilled, answers, images)
    kl_plain = _mean_kl_to_teacher(plain, answers, images)
    assert kl_distilled < 0.2 * kl_plain, (kl_distilled, kl_plain)

    _, metadata = load_checkpoint(distilled)
    recorded = metadata["training"]["distillation"]
    assert recorded["weight"] == 1.0 and recorded["temperature"] == 1.0
    assert recorded["teacher"]["file"] == "cnn.pt" and recorded["teacher"]["arch"] == "artifact_cnn"
    assert "distillation" not in metadata["training"]["hyperparameters"]
    assert load_checkpoint(plain)[1]["training"]["distillation"] is None
