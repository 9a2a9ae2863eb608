"""Robustness measurements of calibrated detectors: FGSM (white-box and transfer) and corruption sweeps.

Each function returns plain dicts of numbers (JSON-ready); rendering them is utils/evaluation/report_markdown.py's job.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from utils.data.corruptions import CORRUPTIONS, Corruption
from utils.data.folders import load_image_folder
from utils.evaluation.adversarial import fgsm_gradient_sign, fgsm_step, p_fake_of_pixels, pixels_from_uint8
from utils.evaluation.metrics import binary_metrics
from utils.inference.scoring import (ENSEMBLE, CalibratedModel, add_ensemble, common_input_size, score_uint8,
                                     scorer_thresholds, stratified_sample, verdicts)

log = logging.getLogger(__name__)

def _class_counts(labels: np.ndarray) -> dict:
    return {"total": int(len(labels)), "real": int((labels == 0).sum()), "fake": int((labels == 1).sum())}


def _flip_rate(before: np.ndarray, after: np.ndarray) -> float:
    return float(np.mean(before != after)) if len(before) else float("nan")


def fgsm_evaluation(members: Sequence[CalibratedModel], images: torch.Tensor | np.ndarray,
                    labels: torch.Tensor | np.ndarray, epsilons: Sequence[float], mixed_fraction: float = 0.5,
                    seed: int = 0, batch_size: int = 256) -> dict:
    """FGSM at each epsilon, crafted on every member and on the ensemble, scored by every scorer.

    - clean: the images as they are;
    - adversarial: every image replaced by its FGSM version;
    - mixed: a seeded, stratified `mixed_fraction` of the images replaced, the rest clean.
    The attack gradient does not depend on epsilon (one step from the clean image), so it is computed once per
    attacked scorer and reused. Labels come from each scorer's calibrated threshold.
    """
    if not 0.0 <= mixed_fraction <= 1.0:
        raise ValueError(f"mixed fraction must lie in [0, 1], got {mixed_fraction}")
    common_input_size(members)
    labels = np.asarray(labels).astype(np.int64)
    pixels = pixels_from_uint8(torch.as_tensor(np.asarray(images)))
    label_tensor = torch.as_tensor(labels)
    thresholds = scorer_thresholds(members)

    def score(batch: torch.Tensor) -> dict[str, np.ndarray]:
        return add_ensemble({m.name: p_fake_of_pixels(m, batch).numpy().astype(np.float64) for m in members})

    clean_scores = score(pixels)
    clean_verdicts = verdicts(clean_scores, thresholds)
    attacked = np.zeros(len(labels), dtype=bool)
    if len(labels) and mixed_fraction > 0:
        attacked[stratified_sample(labels, max(1, round(mixed_fraction * len(labels))), seed)] = True

    sources = [(m.name, [m]) for m in members] + ([(ENSEMBLE, list(members))] if len(members) > 1 else [])
    attacks = []
    for source, source_members in sources:
        started = time.time()
        sign = fgsm_gradient_sign(source_members, pixels, label_tensor, batch_size).float()
        for epsilon in epsilons:
            adversarial_scores = score(fgsm_step(pixels, sign, epsilon))
            adversarial_verdicts = verdicts(adversarial_scores, thresholds)
            for scorer, p_fake in adversarial_scores.items():
                mixed = np.where(attacked, p_fake, clean_scores[scorer])
                attacks.append({
                    "epsilon": float(epsilon), "epsilon_255": round(float(epsilon) * 255, 4),
                    "crafted_on": source, "scored_by": scorer, "white_box": source == scorer,
                    "adversarial": binary_metrics(labels, p_fake, thresholds[scorer]),
                    "mixed": binary_metrics(labels, mixed, thresholds[scorer]),
                    "flip_rate": _flip_rate(clean_verdicts[scorer], adversarial_verdicts[scorer]),
                })
        log.info("FGSM crafted on %s: %d images, %d epsilons, %.1fs", source, len(labels), len(epsilons),
                 time.time() - started)
    return {
        "images": _class_counts(labels), "mixed_fraction": float(mixed_fraction),
        "attacked_in_mixed": int(attacked.sum()), "seed": seed, "epsilons": [float(e) for e in epsilons],
        "thresholds": thresholds,
        "clean": {scorer: binary_metrics(labels, p, thresholds[scorer]) for scorer, p in clean_scores.items()},
        "attacks": attacks,
    }


def corruption_sweep(members: Sequence[CalibratedModel], images: torch.Tensor | np.ndarray,
                     labels: torch.Tensor | np.ndarray, corruptions: Sequence[Corruption] = CORRUPTIONS,
                     seed: int = 0, batch_size: int = 500) -> dict:
    """Metrics of every scorer on each corrupted copy of the images, and the share of verdicts that flipped."""
    common_input_size(members)
    images = np.asarray(images)
    labels = np.asarray(labels).astype(np.int64)
    thresholds = scorer_thresholds(members)
    clean_scores = score_uint8(members, images, batch_size)
    clean_verdicts = verdicts(clean_scores, thresholds)
    results = []
    for corruption in corruptions:
        started = time.time()
        corrupted = corruption.apply(images, seed)
        scores = score_uint8(members, corrupted, batch_size)
        corrupted_verdicts = verdicts(scores, thresholds)
        results.append({
            "name": corruption.name, "family": corruption.family, "severity": corruption.severity,
            "parameter": corruption.parameter, "label": corruption.label,
            # How much the pixels moved, in uint8 steps: JPEG at a file's own quality is nearly idempotent.
            "mean_abs_pixel_change": float(np.abs(corrupted.astype(np.int16) - images.astype(np.int16)).mean()),
            "scorers": {scorer: {**binary_metrics(labels, p, thresholds[scorer]),
                                 "flip_rate": _flip_rate(clean_verdicts[scorer], corrupted_verdicts[scorer])}
                        for scorer, p in scores.items()},
        })
        log.info("corruption %s: %.1fs", corruption.name, time.time() - started)
    return {
        "images": _class_counts(labels), "seed": seed, "thresholds": thresholds,
        "clean": {scorer: binary_metrics(labels, p, thresholds[scorer]) for scorer, p in clean_scores.items()},
        "corruptions": results,
    }


def analyse_folder(members: Sequence[CalibratedModel], data_dir: str | Path, cache_dir: str | Path | None,
                   fgsm_sample: int | None, corruption_sample: int | None, epsilons: Sequence[float],
                   mixed_fraction: float, seed: int, batch_size: int = 500) -> dict:
    """Clean metrics, the FGSM evaluation and the corruption sweep on seeded, stratified samples of one folder.

    The clean metrics are those of the corruption sample (the larger one by default). With the same seed the FGSM
    sample is a subset of the corruption sample when it is smaller.
    """
    started = time.time()
    data = load_image_folder(data_dir, common_input_size(members), cache_dir)
    labels = data.labels.numpy()
    seconds = {"load": round(time.time() - started, 1)}

    started = time.time()
    corruption_index = stratified_sample(labels, corruption_sample, seed)
    corruptions = corruption_sweep(members, data.images[corruption_index], labels[corruption_index], seed=seed,
                                   batch_size=batch_size)
    seconds["corruptions"] = round(time.time() - started, 1)

    started = time.time()
    fgsm_index = stratified_sample(labels, fgsm_sample, seed)
    fgsm = fgsm_evaluation(members, data.images[fgsm_index], labels[fgsm_index], epsilons, mixed_fraction, seed,
                           batch_size=min(batch_size, 256))
    seconds["fgsm"] = round(time.time() - started, 1)
    return {
        "data_dir": str(data_dir), "folder_images": _class_counts(labels),
        "input_size": common_input_size(members),
        "sample_sizes": {"fgsm": int(len(fgsm_index)), "corruptions": int(len(corruption_index))},
        "clean": corruptions["clean"], "fgsm": fgsm, "corruptions": corruptions, "seconds": seconds,
    }
