"""From per-tile logits to one calibrated p_fake per image: the aggregation rule and its temperature.

A tile's evidence is its margin, logit(FAKE) - logit(REAL). The image's margin is a rule over its tiles' margins;
`fit_aggregation` tries every rule on the validation split, fits a temperature and a bias to each (Platt scaling:
p_fake = sigmoid((margin + bias) / T)), and keeps the one with the lowest validation log-loss. The bias matters for
rules such as "max": the largest of 16 tile margins is positive for most real photos too, and a temperature alone
cannot move it below one half. The chosen rule, temperature and bias go into the checkpoint, so serving applies
exactly what validation chose.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

AGGREGATIONS = ("mean", "median", "max", "upper_half_mean")


def tile_margins(logits: np.ndarray) -> np.ndarray:
    """logit(FAKE) - logit(REAL) of each row of (N, 2) logits."""
    logits = np.asarray(logits, dtype=np.float64)
    return logits[:, 1] - logits[:, 0]


def aggregate_margins(margins: np.ndarray, rule: str) -> float:
    """One image's margin from its tiles' margins under `rule`."""
    margins = np.asarray(margins, dtype=np.float64)
    if margins.size == 0:
        raise ValueError("an image needs at least one tile")
    if rule == "mean":
        return float(margins.mean())
    if rule == "median":
        return float(np.median(margins))
    if rule == "max":
        return float(margins.max())
    if rule == "upper_half_mean":
        ordered = np.sort(margins)[::-1]
        return float(ordered[:max(1, (len(ordered) + 1) // 2)].mean())
    raise ValueError(f"unknown aggregation {rule!r}; known: {AGGREGATIONS}")


def aggregate_per_image(margins: np.ndarray, owner: np.ndarray, count: int, rule: str) -> np.ndarray:
    """Per-image margins (count,) from per-tile margins and the index of the image each tile belongs to."""
    return np.array([aggregate_margins(margins[owner == i], rule) for i in range(count)])


def p_fake_from_margin(margin: np.ndarray | float, temperature: float, bias: float = 0.0) -> np.ndarray:
    """sigmoid((margin + bias) / T); with bias 0 the same number as softmax(logits / T)[FAKE] for one tile."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(margin, dtype=np.float64) + bias) / temperature))


def _log_loss(labels: np.ndarray, p_fake: np.ndarray) -> float:
    p = np.clip(p_fake, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def fit_platt(margins: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> tuple[float, float]:
    """(temperature > 0, bias) minimising the log-loss of sigmoid((margin + bias) / T) on held-out data."""
    x = torch.as_tensor(np.asarray(margins, dtype=np.float64)).float()
    y = torch.as_tensor(np.asarray(labels)).float()
    scale = float(x.std()) or 1.0  # fit in standardised units: LBFGS converges in a few steps from there
    log_t = torch.tensor([np.log(scale)], requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t, bias], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits((x + bias) / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.exp().item()), float(bias.item())


def fit_aggregation(margins: np.ndarray, owner: np.ndarray, labels: np.ndarray) -> dict:
    """The rule, temperature and bias with the lowest validation log-loss, with every rule's figures."""
    labels = np.asarray(labels)
    candidates = {}
    for rule in AGGREGATIONS:
        image_margin = aggregate_per_image(margins, owner, len(labels), rule)
        temperature, bias = fit_platt(image_margin, labels)
        candidates[rule] = {"temperature": temperature, "bias": bias,
                            "val_log_loss": _log_loss(labels, p_fake_from_margin(image_margin, temperature, bias))}
    best = min(candidates, key=lambda rule: candidates[rule]["val_log_loss"])
    return {"rule": best, "temperature": candidates[best]["temperature"], "bias": candidates[best]["bias"],
            "candidates": candidates}
