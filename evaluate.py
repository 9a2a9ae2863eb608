"""Evaluate the shipped models (and their ensemble) on any folder laid out as <root>/{REAL,FAKE}/*.

The photo pair: python evaluate.py --profile photo [--fit-pair] [--lofo-dir runs/lofo] (utils/evaluation/photo_evaluation.py).

Example: python evaluate.py --data-dir data/cifake/test --output docs/reports/cifake-test
Writes <output>/metrics.json and PNGs (confusion matrices, ROC, precision-recall, reliability).

FGSM: python evaluate.py --data-dir data/cifake/test --output reports/fgsm --fgsm-epsilon 1/255 2/255 4/255 8/255 \
          --fgsm-fraction 0.5 --fgsm-sample 2000
adds a clean / adversarial / mixed table per model and for the ensemble, attacks transferred between them, and
fgsm_accuracy.png. The whole folder is still scored clean for the main table.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from utils.config import load_config, project_path
from utils.data.folders import load_image_folder
from utils.entry_point import USER_ERRORS, run_entry_point
from utils.errors import ModelUnavailable
from utils.evaluation.adversarial import parse_epsilon
from utils.evaluation.metrics import binary_metrics
from utils.evaluation.report_markdown import fgsm_transfer_section, fgsm_white_box_section
from utils.evaluation.report_plots import plot_confusion_matrices, plot_fgsm_accuracy, plot_reliability, plot_roc_and_pr
from utils.evaluation.robustness import fgsm_evaluation
from utils.inference.calibration import p_fake_from_logits
from utils.inference.checkpoint import git_commit, load_checkpoint, utc_now
from utils.inference.ensemble import ensemble_p_fake, ensemble_threshold
from utils.inference.forward import predict_logits
from utils.inference.preprocessing import PreprocessSpec
from utils.inference.scoring import common_input_size, load_calibrated_models, stratified_sample


def get_args_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder with REAL/ and FAKE/ subfolders")
    parser.add_argument("--output", required=True, help="report folder to write")
    parser.add_argument("--weights", nargs="+", default=None,
                        help="checkpoint files (default: every model in config models.*.output)")
    parser.add_argument("--config", default=None)
    parser.add_argument("--cache-dir", default=None, help="decoded-image cache (default: config data.cache_dir)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--title", default=None, help="label for plot titles (default: the folder name)")
    parser.add_argument("--dedupe-against", metavar="TRAIN_DIR", default=None,
                        help="also report metrics without the images whose bytes also occur in TRAIN_DIR")
    parser.add_argument("--fgsm-epsilon", nargs="+", type=parse_epsilon, metavar="EPS",
                        help="also run FGSM at these epsilons, in pixel units of [0,1] before normalisation "
                             "(e.g. 1/255 2/255 4/255 8/255 or 0.0078)")
    parser.add_argument("--fgsm-fraction", type=float, default=0.5,
                        help="share of the FGSM images that are attacked in the 'mixed' set (default 0.5)")
    parser.add_argument("--fgsm-sample", type=int, default=None,
                        help="run FGSM on a stratified, seeded sample of this many images (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the FGSM sample and mixed-set choice")
    return parser


def run_fgsm(checkpoints: list[Path], data_dir: Path, cache_dir: Path | None, args: argparse.Namespace) -> dict:
    """FGSM evaluation (white-box per scorer, and transfer) on a stratified sample of the folder."""
    members = load_calibrated_models(checkpoints)
    data = load_image_folder(data_dir, common_input_size(members), cache_dir)
    index = stratified_sample(data.labels.numpy(), args.fgsm_sample, args.seed)
    return fgsm_evaluation(members, data.images[index], data.labels.numpy()[index], args.fgsm_epsilon,
                           args.fgsm_fraction, args.seed, batch_size=min(args.batch_size, 256))


def score_folder(checkpoints: list[Path], data_dir: Path, cache_dir: Path | None, batch_size: int):
    """Labels, per-model calibrated p_fake, and metadata for every checkpoint on one folder."""
    labels, digests = None, None
    scores: dict[str, np.ndarray] = {}
    metadata_by_name: dict[str, dict] = {}
    for path in checkpoints:
        model, metadata = load_checkpoint(path)
        spec = PreprocessSpec.from_metadata(metadata)
        data = load_image_folder(data_dir, spec.input_size, cache_dir)
        if labels is not None and not np.array_equal(labels, data.labels.numpy()):
            raise RuntimeError("models saw different label orders; the folder changed during evaluation")
        labels, digests = data.labels.numpy(), data.digests
        logits = predict_logits(model, data.images, spec, batch_size=batch_size)
        scores[metadata["name"]] = p_fake_from_logits(logits, metadata["temperature"]).numpy()
        metadata_by_name[metadata["name"]] = metadata
    return labels, digests, scores, metadata_by_name


def deduplicated_results(train_dir: Path, cache_dir: Path | None, labels: np.ndarray, digests: list,
                         scores: dict[str, np.ndarray], thresholds: dict[str, float]) -> dict:
    """The metrics again without the images whose bytes also occur in the training folder."""
    train_digests = set(load_image_folder(train_dir, 32, cache_dir).digests)
    keep = np.array([d not in train_digests for d in digests])
    return {
        "against": str(train_dir), "excluded": int((~keep).sum()),
        "results": {name: binary_metrics(labels[keep], p[keep], thresholds[name]) for name, p in scores.items()}
        if keep.any() else None}


def write_plots(report: dict, labels: np.ndarray, scores: dict[str, np.ndarray], output: Path, title: str) -> None:
    """The confusion matrices, ROC, precision-recall and reliability PNGs (and FGSM's, when it ran)."""
    results = report["results"]
    if report["fgsm"]:
        plot_fgsm_accuracy(report["fgsm"], output / "fgsm_accuracy.png", title)
    plot_confusion_matrices(results, output / "confusion_matrices.png", f"Confusion matrices: {title}")
    plot_roc_and_pr(labels, scores, results, output / "roc.png", output / "precision_recall.png", title)
    plot_reliability(labels, scores, results, output / "reliability.png", title)


def print_summary(report: dict) -> None:
    """The summary table: every scorer, then the deduplicated and FGSM figures when there are any."""
    print(f"{'scorer':<18}{'accuracy':>9}{'precision':>10}{'recall':>8}{'F1':>8}{'ROC-AUC':>9}{'PR-AUC':>8}{'ECE':>8}")
    for name, m in report["results"].items():
        print(f"{name:<18}{m['accuracy']:>9.4f}{m['precision']:>10.4f}{m['recall']:>8.4f}{m['f1']:>8.4f}"
              f"{m['roc_auc']:>9.5f}{m['pr_auc']:>8.5f}{m['ece']:>8.4f}")
    if report["deduplicated"] and report["deduplicated"]["results"]:
        dedup = report["deduplicated"]
        print(f"without the {dedup['excluded']} images whose bytes also occur in {dedup['against']}:")
        for name, m in dedup["results"].items():
            print(f"{name:<18}{m['accuracy']:>9.4f}  ROC-AUC {m['roc_auc']:.5f}")
    if report["fgsm"]:
        print(f"\nFGSM, white-box\n{fgsm_white_box_section(report['fgsm'], None)}\n")
        print(f"FGSM, transfer\n{fgsm_transfer_section(report['fgsm'])}\n")


def main(argv: list[str] | None = None) -> dict:
    """Score the folder, write metrics.json and the plots, print a summary table."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = get_args_parser().parse_args(argv)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    config = load_config(args.config)
    checkpoints = [Path(p) for p in args.weights] if args.weights else [
        project_path(section["output"]) for name, section in config["models"].items()
        if not name.endswith("_photo")]  # the CIFAKE pair; `evaluate.py --profile photo` evaluates the photo one
    cache_dir = project_path(args.cache_dir or config["data"]["cache_dir"])
    data_dir = Path(args.data_dir)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)

    labels, digests, scores, metadata = score_folder(checkpoints, data_dir, cache_dir, args.batch_size)
    thresholds = {name: m["threshold"] for name, m in metadata.items()}
    if len(scores) > 1:
        thresholds["ensemble"] = ensemble_threshold([m["threshold"] for m in metadata.values()])
        scores["ensemble"] = ensemble_p_fake(list(scores.values()))
    results = {name: binary_metrics(labels, p, thresholds[name]) for name, p in scores.items()}

    report = {
        "data_dir": str(args.data_dir),
        "images": int(len(labels)),
        "results": results,
        "models": {name: {"file": str(path.name), "temperature": m["temperature"], "threshold": m["threshold"],
                          "input_size": m["input_size"], "trained_at": m.get("created_at"),
                          "trained_commit": m.get("git_commit")}
                   for (name, m), path in zip(metadata.items(), checkpoints)},
        "ensemble_rule": "mean of calibrated p_fake; threshold = mean of the models' thresholds",
        "deduplicated": None,
        "generated_at": utc_now(),
        "git_commit": git_commit(),
    }
    if args.dedupe_against:
        report["deduplicated"] = deduplicated_results(Path(args.dedupe_against), cache_dir, labels, digests, scores,
                                                      thresholds)
    title = args.title or data_dir.name
    report["fgsm"] = run_fgsm(checkpoints, data_dir, cache_dir, args) if args.fgsm_epsilon else None
    (output / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_plots(report, labels, scores, output, title)
    print_summary(report)
    print(f"wrote {output / 'metrics.json'} and plots")
    return report


if __name__ == "__main__":
    import sys

    if "--profile" in sys.argv[1:]:  # the photo pair: tiles, per source and generator, robustness, LOFO
        from utils.evaluation.photo_evaluation import main as photo_main
        run_entry_point(photo_main, (ModelUnavailable, *USER_ERRORS))
    else:
        run_entry_point(main, (ModelUnavailable, *USER_ERRORS))
