"""Evaluation plots: confusion matrices, ROC and precision-recall curves, reliability diagrams, robustness curves."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)
import numpy as np  # noqa: E402

from utils.evaluation.metrics import precision_recall_curve, reliability_bins, roc_curve  # noqa: E402


def _panels(count: int, title: str):
    fig, axes = plt.subplots(1, count, figsize=(4.2 * count, 4), squeeze=False)
    fig.suptitle(title)
    return fig, axes[0]


def plot_confusion_matrices(results: dict[str, dict], path: Path, title: str) -> None:
    """One confusion-matrix panel per scorer (model or ensemble)."""
    fig, axes = _panels(len(results), title)
    for ax, (name, metrics) in zip(axes, results.items()):
        matrix = np.array(metrics["confusion_matrix"]["matrix"])
        ax.imshow(matrix, cmap="Blues")
        for (row, col), value in np.ndenumerate(matrix):
            ax.text(col, row, f"{value:,}", ha="center", va="center",
                    color="white" if value > matrix.max() / 2 else "black")
        ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["REAL", "FAKE"], yticklabels=["REAL", "FAKE"],
               xlabel="predicted", ylabel="true", title=f"{name} (acc {metrics['accuracy']:.4f})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_roc_and_pr(labels: np.ndarray, scores: dict[str, np.ndarray], results: dict[str, dict],
                    roc_path: Path, pr_path: Path, title: str) -> None:
    """ROC curves and precision-recall curves, every scorer on one axis each."""
    for kind, path in (("roc", roc_path), ("pr", pr_path)):
        fig, ax = plt.subplots(figsize=(5, 5))
        for name, p_fake in scores.items():
            if kind == "roc":
                x, y = roc_curve(labels, p_fake)
                ax.plot(x, y, label=f"{name} (AUC {results[name]['roc_auc']:.4f})")
            else:
                precision, recall = precision_recall_curve(labels, p_fake)
                ax.plot(recall, precision, label=f"{name} (AP {results[name]['pr_auc']:.4f})")
        if kind == "roc":
            ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
            ax.set(xlabel="false positive rate (REAL called FAKE)", ylabel="true positive rate", title=f"ROC: {title}")
        else:
            ax.set(xlabel="recall (FAKE)", ylabel="precision (FAKE)", title=f"Precision-recall: {title}")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right" if kind == "roc" else "lower left")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)


def plot_reliability(labels: np.ndarray, scores: dict[str, np.ndarray], results: dict[str, dict], path: Path,
                     title: str) -> None:
    """Reliability diagram per scorer: accuracy against confidence of the predicted class, with bin counts."""
    fig, axes = _panels(len(scores), f"Reliability: {title}")
    for ax, (name, p_fake) in zip(axes, scores.items()):
        bins = [b for b in reliability_bins(labels, p_fake) if b["count"]]
        centers = [(b["low"] + b["high"]) / 2 for b in bins]
        width = bins[0]["high"] - bins[0]["low"] if bins else 0.033
        ax.bar(centers, [b["accuracy"] for b in bins], width=width * 0.9, alpha=0.7, label="accuracy")
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", ms=3, color="black",
                label="(mean confidence, accuracy)")
        ax.plot([0.5, 1], [0.5, 1], ls="--", color="grey", lw=0.8, label="perfect calibration")
        ax.set(xlim=(0.5, 1), ylim=(0, 1.02), xlabel="confidence", ylabel="accuracy",
               title=f"{name} (ECE {results[name]['ece']:.4f})")
        ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_fgsm_accuracy(fgsm: dict, path: Path, title: str) -> None:
    """Accuracy on fully attacked images against epsilon: white-box solid, transferred attacks dashed."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    epsilons = [0.0] + [e * 255 for e in fgsm["epsilons"]]
    pairs = list(dict.fromkeys((a["crafted_on"], a["scored_by"]) for a in fgsm["attacks"]))
    for source, scorer in sorted(pairs, key=lambda pair: (pair[0] != pair[1], pair)):
        by_epsilon = {a["epsilon"]: a["adversarial"]["accuracy"] for a in fgsm["attacks"]
                      if (a["crafted_on"], a["scored_by"]) == (source, scorer)}
        accuracy = [fgsm["clean"][scorer]["accuracy"]] + [by_epsilon[e] for e in fgsm["epsilons"]]
        white_box = source == scorer
        ax.plot(epsilons, accuracy, marker="o" if white_box else ".", ls="-" if white_box else "--",
                lw=2 if white_box else 1, label=f"{scorer} (white-box)" if white_box else f"{source} -> {scorer}")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="epsilon (uint8 steps, /255)", ylabel="accuracy (every image attacked)", ylim=(0, 1.02),
           title=f"FGSM: {title}", xticks=epsilons)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_corruption_curves(sweep: dict, metric: str, path: Path, title: str) -> None:
    """One panel per corruption family: `metric` ("accuracy", "roc_auc" or "flip_rate") against severity."""
    families = list(dict.fromkeys(c["family"] for c in sweep["corruptions"]))
    scorers = list(sweep["clean"])
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 4), squeeze=False, sharey=True)
    axes = axes[0]
    fig.suptitle(f"{metric.replace('_', ' ')} under corruptions: {title}")

    def clean_value(scorer: str) -> float:
        return 0.0 if metric == "flip_rate" else sweep["clean"][scorer][metric]

    for ax, family in zip(axes, families):
        members = sorted((c for c in sweep["corruptions"] if c["family"] == family), key=lambda c: c["severity"])
        ticks = ["clean"] + [c["label"] for c in members]
        for scorer in scorers:
            values = [clean_value(scorer)] + [c["scorers"][scorer][metric] for c in members]
            ax.plot(range(len(ticks)), values, marker="o", label=scorer)
        ax.set_xticks(range(len(ticks)), ticks, fontsize=8)
        ax.set(title=family, xlabel="severity")
        if metric != "flip_rate":
            ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric.replace("_", " "))
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
