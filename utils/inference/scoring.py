"""Calibrated scoring of uint8 images by a set of checkpoints and by their ensemble (evaluation side).

The rule is the one serving uses: each model's p_fake is softmax(logits / temperature)[FAKE], its label is FAKE when
p_fake reaches its validation-chosen threshold; the ensemble averages the members' p_fake and thresholds.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from utils.inference.calibration import p_fake_from_logits
from utils.inference.checkpoint import load_checkpoint
from utils.inference.ensemble import ensemble_p_fake, ensemble_threshold
from utils.inference.forward import predict_logits
from utils.inference.preprocessing import PreprocessSpec

ENSEMBLE = "ensemble"


@dataclass
class CalibratedModel:
    """One loaded checkpoint with what is needed to turn its logits into a calibrated verdict."""

    name: str
    model: nn.Module
    spec: PreprocessSpec
    temperature: float
    threshold: float
    file: str = ""
    metadata: dict = field(default_factory=dict, repr=False)


def load_calibrated_models(paths: Sequence[str | Path]) -> list[CalibratedModel]:
    """Load checkpoints (eval mode) with their preprocessing, temperature and threshold; names must differ."""
    members = []
    for path in paths:
        model, metadata = load_checkpoint(path)
        members.append(CalibratedModel(metadata["name"], model, PreprocessSpec.from_metadata(metadata),
                                       float(metadata["temperature"]), float(metadata["threshold"]),
                                       Path(path).name, metadata))
    names = [m.name for m in members]
    if len(set(names)) != len(names) or ENSEMBLE in names:
        raise ValueError(f"checkpoints must have distinct names other than {ENSEMBLE!r}; got {names}")
    return members


def common_input_size(members: Sequence[CalibratedModel]) -> int:
    """The input size every member shares (robustness runs perturb one image array for all of them)."""
    sizes = {m.spec.input_size for m in members}
    if len(sizes) != 1:
        raise ValueError(f"models have different input sizes {sorted(sizes)}; robustness runs need one size")
    return sizes.pop()


def scorer_thresholds(members: Sequence[CalibratedModel]) -> dict[str, float]:
    """Each scorer's label threshold: the member's own, and the mean of them for the ensemble."""
    thresholds = {m.name: m.threshold for m in members}
    if len(members) > 1:
        thresholds[ENSEMBLE] = ensemble_threshold([m.threshold for m in members])
    return thresholds


def add_ensemble(member_scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The members' p_fake plus the ensemble's (their mean) when there is more than one member."""
    scores = dict(member_scores)
    if len(member_scores) > 1:
        scores[ENSEMBLE] = ensemble_p_fake(list(member_scores.values()))
    return scores


def score_uint8(members: Sequence[CalibratedModel], images: torch.Tensor | np.ndarray,
                batch_size: int = 500) -> dict[str, np.ndarray]:
    """Calibrated p_fake of uint8 NHWC images for every member and the ensemble (float32, as served)."""
    images = torch.as_tensor(np.asarray(images))
    member_scores = {}
    for member in members:
        logits = predict_logits(member.model, images, member.spec, batch_size=batch_size)
        member_scores[member.name] = p_fake_from_logits(logits, member.temperature).numpy().astype(np.float64)
    return add_ensemble(member_scores)


def verdicts(scores: dict[str, np.ndarray], thresholds: dict[str, float]) -> dict[str, np.ndarray]:
    """Boolean FAKE verdict per scorer at its threshold."""
    return {name: np.asarray(p) >= thresholds[name] for name, p in scores.items()}


def stratified_sample(labels: np.ndarray | torch.Tensor, size: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample keeping the class shares; all indices when size is None or too large.

    Each class is drawn from one seeded permutation, so a smaller sample with the same seed is a subset of a
    larger one.
    """
    labels = np.asarray(labels)
    if size is None or size >= len(labels):
        return np.arange(len(labels))
    if size <= 0:
        raise ValueError(f"sample size must be positive, got {size}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = np.floor(counts * size / len(labels)).astype(int)
    # Hand the rounding remainder to the classes with the largest fractional parts, deterministically.
    remainder = size - quotas.sum()
    order = np.argsort(-(counts * size / len(labels) - quotas), kind="stable")
    quotas[order[:remainder]] += 1
    kept = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quotas)]
    return np.sort(np.concatenate(kept))
