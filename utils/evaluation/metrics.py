"""Binary classification metrics for p_fake scores (FAKE = positive), in plain NumPy."""
from __future__ import annotations

import numpy as np


def _rankdata(values: np.ndarray) -> np.ndarray:
    """Ranks starting at 1, ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(values)]])
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return ranks


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied scores counted half)."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _descending_thresholds(labels: np.ndarray, scores: np.ndarray):
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    scores_sorted = np.asarray(scores, dtype=np.float64)[order]
    labels_sorted = np.asarray(labels)[order].astype(np.float64)
    last_of_each = np.r_[np.flatnonzero(np.diff(scores_sorted)), len(scores_sorted) - 1]
    true_pos = np.cumsum(labels_sorted)[last_of_each]
    false_pos = (last_of_each + 1) - true_pos
    return true_pos, false_pos, scores_sorted[last_of_each]


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold, starting at (0, 0)."""
    true_pos, false_pos, _ = _descending_thresholds(labels, scores)
    return np.r_[0.0, false_pos / max(false_pos[-1], 1)], np.r_[0.0, true_pos / max(true_pos[-1], 1)]


def precision_recall_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) at every distinct threshold, highest threshold first."""
    true_pos, false_pos, _ = _descending_thresholds(labels, scores)
    precision = true_pos / (true_pos + false_pos)
    recall = true_pos / max(true_pos[-1], 1)
    return precision, recall


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as the step sum of precision over recall gains (PR-AUC)."""
    precision, recall = precision_recall_curve(labels, scores)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def reliability_bins(labels: np.ndarray, p_fake: np.ndarray, n_bins: int = 15) -> list[dict]:
    """Per equal-width confidence bin: count, mean confidence, accuracy (confidence of the predicted class)."""
    labels = np.asarray(labels)
    p_fake = np.asarray(p_fake, dtype=np.float64)
    predicted = (p_fake >= 0.5).astype(int)
    confidence = np.where(predicted == 1, p_fake, 1.0 - p_fake)
    correct = predicted == labels
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    bins = []
    for i, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        in_bin = (confidence >= low) & ((confidence < high) if i < n_bins - 1 else (confidence <= high))
        count = int(in_bin.sum())
        bins.append({"low": float(low), "high": float(high), "count": count,
                     "confidence": float(confidence[in_bin].mean()) if count else None,
                     "accuracy": float(correct[in_bin].mean()) if count else None})
    return bins


def expected_calibration_error(labels: np.ndarray, p_fake: np.ndarray, n_bins: int = 15) -> float:
    """ECE: count-weighted mean |accuracy - confidence| over equal-width bins of the predicted class's confidence."""
    bins = reliability_bins(labels, p_fake, n_bins)
    total = sum(b["count"] for b in bins)
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) / total)


def binary_metrics(labels: np.ndarray, p_fake: np.ndarray, threshold: float) -> dict:
    """Accuracy, precision, recall, F1, ROC-AUC, PR-AUC, ECE, confusion matrix and counts at `threshold`."""
    labels = np.asarray(labels).astype(int)
    p_fake = np.asarray(p_fake, dtype=np.float64)
    predicted = (p_fake >= threshold).astype(int)
    tp = int(((predicted == 1) & (labels == 1)).sum())
    tn = int(((predicted == 0) & (labels == 0)).sum())
    fp = int(((predicted == 1) & (labels == 0)).sum())
    fn = int(((predicted == 0) & (labels == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (tp + tn) / len(labels),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc(labels, p_fake),
        "pr_auc": average_precision(labels, p_fake),
        "ece": expected_calibration_error(labels, p_fake),
        "threshold": float(threshold),
        "confusion_matrix": {"rows": "true REAL, FAKE", "columns": "predicted REAL, FAKE",
                             "matrix": [[tn, fp], [fn, tp]]},
        "counts": {"total": int(len(labels)), "real": int((labels == 0).sum()), "fake": int((labels == 1).sum()),
                   "misclassified": fp + fn},
    }
