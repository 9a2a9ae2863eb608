"""Knowledge distillation: a trained detector (the teacher) guides the training of another (the student).

The student's loss becomes `(1 - weight) * cross-entropy(labels) + weight * T^2 * KL(teacher_T || student_T)`,
where `_T` means softmax of the logits divided by the distillation temperature T (Hinton et al., 2015). The teacher
scores the very batch the student sees, after augmentation, through its own normalisation, so the soft targets
follow every flip and shift.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from utils.errors import ModelUnavailable
from utils.evaluation.adversarial import denormalize, normalize_pixels
from utils.inference.checkpoint import load_checkpoint
from utils.inference.forward import autocast_context
from utils.inference.preprocessing import PreprocessSpec


@dataclass
class Teacher:
    """A frozen detector with its own preprocessing, and where it came from."""

    model: nn.Module
    spec: PreprocessSpec
    source: dict


def check_distillation(values: dict) -> dict:
    """Validate resolved distillation settings (teacher path, weight, temperature; utils/training/settings.py)."""
    weight, temperature = float(values["weight"]), float(values["temperature"])
    if not 0.0 < weight <= 1.0:
        raise ValueError(f"distillation weight must lie in (0, 1], got {weight}")
    if temperature <= 0.0:
        raise ValueError(f"distillation temperature must be positive, got {temperature}")
    return {"teacher": str(values["teacher"]), "weight": weight, "temperature": temperature}


def load_teacher(path: str | Path, student_spec: PreprocessSpec, device: torch.device) -> Teacher:
    """Load a detector checkpoint as a frozen teacher; it must take the student's input size."""
    try:
        model, metadata = load_checkpoint(path)
    except ModelUnavailable as error:  # a user's mistake here, not a serving failure: one line, exit status 2
        raise ValueError(f"--distill-from {path}: {error.message}") from None
    spec = PreprocessSpec.from_metadata(metadata)
    if spec.input_size != student_spec.input_size:
        raise ValueError(f"--distill-from {path}: the teacher takes {spec.input_size} px images and the student "
                         f"{student_spec.input_size} px; distil between models of the same input size")
    model = model.to(device).to(memory_format=torch.channels_last).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    val = (metadata.get("metrics") or {}).get("val") or {}
    source = {"file": Path(path).name, "arch": metadata["arch"], "git_commit": metadata.get("git_commit"),
              "created_at": metadata.get("created_at"), "val_accuracy": val.get("accuracy")}
    return Teacher(model=model, spec=spec, source=source)


@torch.inference_mode()
def teacher_logits(teacher: Teacher, student_inputs: torch.Tensor, student_spec: PreprocessSpec,
                   bf16: bool) -> torch.Tensor:
    """The teacher's float32 logits for a batch normalised for the student (renormalised when the two differ)."""
    inputs = student_inputs
    if (teacher.spec.mean, teacher.spec.std) != (student_spec.mean, student_spec.std):
        inputs = normalize_pixels(denormalize(student_inputs, student_spec), teacher.spec)
    inputs = inputs.contiguous(memory_format=torch.channels_last)
    with autocast_context(inputs.device, bf16):
        return teacher.model(inputs).float()


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch."""
    log_student = F.log_softmax(student.float() / temperature, dim=1)
    log_teacher = F.log_softmax(teacher.float() / temperature, dim=1)
    kl = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
    return kl * temperature ** 2
