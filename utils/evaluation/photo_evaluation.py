"""Evaluating the photo pair: validation per source and generator, out of domain, robustness, leave-one-family-out.

`python evaluate.py --profile photo` lands here. Images are scored as serving scores them: decoded by the service's
decoder, cut into tiles by utils/inference/tiling.py, each model's tile margins aggregated by its checkpoint's rule and
calibrated by its temperature and bias, the ensemble the mean of the two (tests/utils/training/test_photos.py checks the
tiles are the service's; tests/utils/inference/test_runtime.py that ONNX Runtime and PyTorch agree).
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch import nn

from utils.config import load_config, project_path
from utils.data.folders import scan_image_folder
from utils.data.photo_corpus import FAMILIES, PhotoRecord, read_manifest, split_by_group
from utils.data.photo_dataset import decode_crop
from utils.evaluation.metrics import binary_metrics
from utils.imaging.decoding import decode_image
from utils.inference.calibration import choose_threshold
from utils.inference.checkpoint import git_commit, load_checkpoint, utc_now
from utils.inference.ensemble import PAIR_FILE, read_pair_threshold
from utils.inference.forward import predict_logits
from utils.inference.preprocessing import PreprocessSpec
from utils.inference.tile_aggregation import aggregate_per_image, p_fake_from_margin, tile_margins
from utils.inference.tiling import tile_image

log = logging.getLogger(__name__)
ENSEMBLE = "ensemble"


@dataclass
class PhotoScorer:
    """A photo checkpoint with its tiling rule and calibration."""

    name: str
    model: nn.Module
    spec: PreprocessSpec
    metadata: dict

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])


def load_photo_scorers(paths: list[Path]) -> list[PhotoScorer]:
    """Photo checkpoints, refused when one is not a photo model."""
    scorers = []
    for path in paths:
        model, metadata = load_checkpoint(path)
        if metadata.get("profile") != "photo":
            raise ValueError(f"{path} is not a photo model (train it with --profile photo)")
        scorers.append(PhotoScorer(metadata["name"], model, PreprocessSpec.from_metadata(metadata), metadata))
    return scorers


def score_arrays(scorers: list[PhotoScorer], arrays: list[np.ndarray], max_tiles: int) -> dict[str, np.ndarray]:
    """Calibrated p_fake of each image (uint8 HxWx3) for every scorer, plus the ensemble (their mean)."""
    scores = {}
    for scorer in scorers:
        tiles, owner = [], []
        for index, array in enumerate(arrays):
            image_tiles, _ = tile_image(array, scorer.spec.input_size, max_tiles)
            tiles.append(image_tiles)
            owner.extend([index] * len(image_tiles))
        logits = predict_logits(scorer.model, torch.from_numpy(np.concatenate(tiles)), scorer.spec, batch_size=256)
        tiling = scorer.metadata["tiling"]
        margins = aggregate_per_image(tile_margins(logits.numpy()), np.array(owner), len(arrays),
                                      tiling["aggregation"])
        scores[scorer.name] = p_fake_from_margin(margins, scorer.metadata["temperature"], tiling.get("bias", 0.0))
    if len(scorers) > 1:
        scores[ENSEMBLE] = np.mean([scores[s.name] for s in scorers], axis=0)
    return scores


def thresholds_of(scorers: list[PhotoScorer], pair_threshold: float | None) -> dict[str, float]:
    """Each scorer's threshold; the ensemble's is the pair's validation-chosen one (or the members' mean)."""
    thresholds = {s.name: s.threshold for s in scorers}
    if len(scorers) > 1:
        thresholds[ENSEMBLE] = pair_threshold if pair_threshold is not None else float(
            np.mean([s.threshold for s in scorers]))
    return thresholds


def metrics_for(labels: np.ndarray, scores: dict[str, np.ndarray], thresholds: dict[str, float]) -> dict:
    """binary_metrics per scorer."""
    return {name: binary_metrics(labels, p, thresholds[name]) for name, p in scores.items()}


# --- perturbations a photo meets on the web -------------------------------------------------------------------

def jpeg_resave(array: np.ndarray, quality: int) -> np.ndarray:
    """Re-saved as JPEG at `quality` and decoded by the service's decoder."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=quality)
    return decode_image(buffer.getvalue()).pixels


def downscale(array: np.ndarray, factor: float) -> np.ndarray:
    """Shrunk by `factor` (bicubic, antialiased), then saved as JPEG q95 as a site would serve it."""
    image = Image.fromarray(array)
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return jpeg_resave(np.asarray(image.resize(size, Image.Resampling.BICUBIC)), 95)


def blur(array: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur, then JPEG q95."""
    return jpeg_resave(np.asarray(Image.fromarray(array).filter(ImageFilter.GaussianBlur(sigma))), 95)


PERTURBATIONS = {**{f"JPEG q{q}": (jpeg_resave, q) for q in (95, 90, 75, 60, 50)},
                 "downscale 0.75": (downscale, 0.75), "downscale 0.5": (downscale, 0.5),
                 "blur sigma 1": (blur, 1.0)}


def robustness(scorers: list[PhotoScorer], arrays: list[np.ndarray], labels: np.ndarray,
               thresholds: dict[str, float], max_tiles: int) -> dict:
    """Accuracy, ROC-AUC and the share of ensemble verdicts that flip, under each perturbation."""
    clean = score_arrays(scorers, arrays, max_tiles)
    clean_verdict = clean[ENSEMBLE] >= thresholds[ENSEMBLE]
    results = {"clean": {name: _summary(labels, p, thresholds[name]) for name, p in clean.items()}}
    for name, (function, argument) in PERTURBATIONS.items():
        scores = score_arrays(scorers, [function(a, argument) for a in arrays], max_tiles)
        results[name] = {scorer: _summary(labels, p, thresholds[scorer]) for scorer, p in scores.items()}
        results[name][ENSEMBLE]["verdict_flips"] = float(np.mean((scores[ENSEMBLE] >= thresholds[ENSEMBLE])
                                                                 != clean_verdict))
        results[name][ENSEMBLE]["mean_p_fake_shift"] = float(np.mean(scores[ENSEMBLE] - clean[ENSEMBLE]))
        log.info("%s: ensemble accuracy %.3f, flips %.3f", name, results[name][ENSEMBLE]["accuracy"],
                 results[name][ENSEMBLE]["verdict_flips"])
    return results


def _summary(labels: np.ndarray, p_fake: np.ndarray, threshold: float) -> dict:
    m = binary_metrics(labels, p_fake, threshold)
    return {key: m[key] for key in ("accuracy", "roc_auc", "ece", "recall")} | {
        "specificity": float(np.mean(p_fake[labels == 0] < threshold)) if (labels == 0).any() else None}


# --- breakdowns ---------------------------------------------------------------------------------------------------

def per_group_breakdown(records: list[PhotoRecord], scores: dict[str, np.ndarray], thresholds: dict[str, float],
                        key) -> list[dict]:
    """Per value of `key(record)`: the share each scorer gets right, and ROC-AUC against all REAL crops."""
    labels = np.array([r.label for r in records])
    rows = []
    for value in sorted({key(r) for r in records}):
        member = np.array([key(r) == value for r in records])
        row = {"group": value, "label": "FAKE" if labels[member].all() else "REAL" if not labels[member].any()
               else "both", "crops": int(member.sum())}
        for name, p in scores.items():
            right = (p[member] >= thresholds[name]) == (labels[member] == 1)
            row[f"{name}_correct"] = float(right.mean())
            if labels[member].all():  # a generator or FAKE source: its crops against every REAL crop
                against = member | (labels == 0)
                row[f"{name}_auc_vs_real"] = binary_metrics(labels[against], p[against], thresholds[name])["roc_auc"]
        rows.append(row)
    return rows


def cifake_stacking_probe(records: list[PhotoRecord], arrays: list[np.ndarray], photo_p: np.ndarray) -> dict:
    """Does the CIFAKE pair's opinion of the downscaled whole image add anything to the photo ensemble?

    Logistic regressions on [logit(photo p_fake)] and on [logit(photo), logit(CIFAKE p_fake)], scored by 5-fold
    cross-validation grouped by source image on the validation split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss, roc_auc_score
    from sklearn.model_selection import GroupKFold

    from utils.inference.preprocessing import fit_to_input
    from utils.inference.scoring import load_calibrated_models, score_uint8

    config = load_config()
    members = load_calibrated_models([project_path(config["models"][k]["output"]) for k in ("cnn", "efficientnet")])
    thumbs = np.stack([fit_to_input(Image.fromarray(a), members[0].spec.input_size) for a in arrays])
    cifake_p = score_uint8(members, thumbs)["ensemble"]
    labels = np.array([r.label for r in records])
    groups = np.array([r.group for r in records])

    def logit(p: np.ndarray) -> np.ndarray:
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    results = {"cifake_pair_alone_auc": float(roc_auc_score(labels, cifake_p))}
    for name, features in (("photo_pair_only", logit(photo_p)[:, None]),
                           ("photo_pair_plus_cifake_pair", np.stack([logit(photo_p), logit(cifake_p)], axis=1))):
        out = np.zeros(len(labels))
        for train, test in GroupKFold(n_splits=5, shuffle=True, random_state=0).split(features, labels, groups):
            out[test] = LogisticRegression().fit(features[train], labels[train]).predict_proba(features[test])[:, 1]
        results[name] = {"auc": float(roc_auc_score(labels, out)), "log_loss": float(log_loss(labels, out))}
    return results


def leave_one_family_out(lofo_dir: Path, records: list[PhotoRecord], val_idx: np.ndarray,
                         max_tiles: int) -> dict:
    """Each held-out family's crops (none trained on) against the validation REAL crops, for every
    <lofo_dir>/<family>/cnn_photo.pt found."""
    real_val = [records[i] for i in val_idx if records[i].label == 0]
    real_arrays = [decode_crop(r.path) for r in real_val]
    results = {}
    for family in FAMILIES:
        path = lofo_dir / family.replace(" ", "_") / "cnn_photo.pt"
        if not path.is_file():
            continue
        scorers = load_photo_scorers([path])
        held_out = [r for r in records if r.family == family]
        if scorers[0].metadata["training"].get("held_out_family") != family:
            raise ValueError(f"{path} was not trained with --hold-out-family {family!r}")
        arrays = real_arrays + [decode_crop(r.path) for r in held_out]
        labels = np.array([0] * len(real_arrays) + [1] * len(held_out))
        p = score_arrays(scorers, arrays, max_tiles)[scorers[0].name]
        m = binary_metrics(labels, p, scorers[0].threshold)
        results[family] = {"held_out_crops": len(held_out), "real_crops": len(real_arrays), "roc_auc": m["roc_auc"],
                           "recall_at_threshold": m["recall"], "accuracy": m["accuracy"],
                           "in_domain_val": scorers[0].metadata["metrics"]["val"]["roc_auc"],
                           "train_seconds": scorers[0].metadata["training"]["train_seconds"],
                           "epochs_run": scorers[0].metadata["training"]["epochs_run"]}
        log.info("leave-one-family-out %s: ROC-AUC %.3f", family, m["roc_auc"])
    if results:
        results["mean_roc_auc"] = float(np.mean([r["roc_auc"] for r in results.values()]))
    return results


def load_folder_arrays(folder: Path) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """Every image of a REAL/FAKE folder, decoded by the service's decoder."""
    items = scan_image_folder(folder)
    arrays = [decode_image(path.read_bytes()).pixels for path, _ in items]
    return arrays, np.array([label for _, label in items]), [str(path) for path, _ in items]


def fit_pair(scorers: list[PhotoScorer], val_labels: np.ndarray, val_scores: dict[str, np.ndarray],
             weights_dir: Path) -> float:
    """Choose the ensemble threshold on validation and record it, with the members it was fitted on."""
    threshold = choose_threshold(val_scores[ENSEMBLE], val_labels)
    payload = {"members": {s.name: s.metadata.get("created_at") for s in scorers}, "threshold": threshold,
               "rule": "mean of the members' calibrated p_fake", "fitted_on": "photo validation split (by group)",
               "val_metrics": binary_metrics(val_labels, val_scores[ENSEMBLE], threshold),
               "created_at": utc_now(), "git_commit": git_commit()}
    (weights_dir / PAIR_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    log.info("photo ensemble threshold %.3f written to %s", threshold, weights_dir / PAIR_FILE)
    return threshold


def get_args_parser() -> argparse.ArgumentParser:
    """Flags of `evaluate.py --profile photo`."""
    parser = argparse.ArgumentParser(description="Evaluate the photo pair (evaluate.py --profile photo)")
    parser.add_argument("--profile", choices=("photo",), required=True)
    parser.add_argument("--weights", nargs="+", default=None, help="photo checkpoints (default: the config's)")
    parser.add_argument("--data-dir", default=None, help="photos-v1 root (default: config data.photos_dir)")
    parser.add_argument("--ood-dir", default="data/sd-vs-coco-200", help="out-of-domain REAL/FAKE folder")
    parser.add_argument("--output", default="docs/reports/photo", help="report folder (metrics.json)")
    parser.add_argument("--markdown", default="docs/photo-evaluation.md")
    parser.add_argument("--fit-pair", action="store_true",
                        help=f"choose the ensemble threshold on validation and write <weights dir>/{PAIR_FILE}")
    parser.add_argument("--lofo-dir", default=None, help="folder of leave-one-family-out runs (<family>/cnn_photo.pt)")
    parser.add_argument("--robustness-sample", type=int, default=300, help="images per set for the sweeps")
    parser.add_argument("--skip-robustness", action="store_true")
    parser.add_argument("--tile-budgets", type=int, nargs="*", default=[4, 8],
                        help="also score validation and out-of-domain with these tile budgets")
    parser.add_argument("--threads", type=int, default=None)
    return parser


def _models_section(scorers: list, paths: list[Path]) -> dict:
    """What the report says of each checkpoint scored: file, age, aggregation, calibration, threshold."""
    return {s.name: {"file": str(p), "created_at": s.metadata.get("created_at"),
                     "aggregation": s.metadata["tiling"]["aggregation"],
                     "temperature": s.metadata["temperature"],
                     "bias": s.metadata["tiling"].get("bias", 0.0), "threshold": s.threshold}
            for s, p in zip(scorers, paths)}


def _tile_budget_section(scorers: list, val_arrays: list, val_labels: np.ndarray, ood: tuple | None,
                         budgets: list[int], thresholds: dict) -> dict:
    """What fewer tiles per image cost, to choose serving.max_tiles against speed."""
    section = {}
    for budget in budgets:
        row = {"validation": metrics_for(val_labels, score_arrays(scorers, val_arrays, budget), thresholds)}
        if ood:
            row["out_of_domain"] = metrics_for(ood[1], score_arrays(scorers, ood[0], budget), thresholds)
        section[str(budget)] = {part: {name: {"roc_auc": m["roc_auc"], "accuracy": m["accuracy"],
                                              "ece": m["ece"]} for name, m in res.items()}
                                for part, res in row.items()}
    return section


def _robustness_section(scorers: list, val_arrays: list, val_labels: np.ndarray, ood: tuple | None, ood_name: str,
                        thresholds: dict, max_tiles: int, sample: int) -> dict:
    """The robustness sweeps on a seeded sample of validation, and of the out-of-domain set when there is one."""
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(val_arrays), min(sample, len(val_arrays)), replace=False))
    section = {"validation sample": robustness(scorers, [val_arrays[i] for i in pick],
                                               val_labels[pick], thresholds, max_tiles)}
    if ood:
        pick = np.sort(rng.choice(len(ood[0]), min(sample, len(ood[0])), replace=False))
        section[ood_name] = robustness(scorers, [ood[0][i] for i in pick], ood[1][pick], thresholds, max_tiles)
    return section


def _write_report(report: dict, args: argparse.Namespace, argv: list[str] | None) -> None:
    """metrics.json and the Markdown report, then the headline table on stdout."""
    output = project_path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    from utils.evaluation.photo_report import write_photo_report
    write_photo_report(report, project_path(args.markdown), "python evaluate.py " + " ".join(
        argv if argv is not None else __import__("sys").argv[1:]))
    for section in ("validation", "out_of_domain"):
        if section in report:
            for name, m in report[section]["results"].items():
                print(f"{section:14s} {name:14s} accuracy {m['accuracy']:.4f} ROC-AUC {m['roc_auc']:.4f} "
                      f"ECE {m['ece']:.4f}")


def main(argv: list[str] | None = None) -> dict:
    """Score, write metrics.json and the Markdown report, print the headline table."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = get_args_parser().parse_args(argv)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    config = load_config()
    max_tiles = int(config["serving"]["max_tiles"])
    paths = [Path(p) for p in args.weights] if args.weights else [
        project_path(config["models"][key]["output"]) for key in ("cnn_photo", "efficientnet_photo")]
    scorers = load_photo_scorers(paths)
    weights_dir = paths[0].parent
    records = read_manifest(project_path(args.data_dir or config["data"]["photos_dir"]))
    _, val_idx = split_by_group(records, config["data"]["photos_val_fraction"], config["data"]["split_seed"])
    val_records = [records[i] for i in val_idx]
    val_arrays = [decode_crop(r.path) for r in val_records]
    val_labels = np.array([r.label for r in val_records])
    val_scores = score_arrays(scorers, val_arrays, max_tiles)
    pair_threshold = (fit_pair(scorers, val_labels, val_scores, weights_dir) if args.fit_pair and len(scorers) > 1
                      else read_pair_threshold(weights_dir, scorers))
    thresholds = thresholds_of(scorers, pair_threshold)
    report: dict = {"models": _models_section(scorers, paths), "thresholds": thresholds, "max_tiles": max_tiles,
                    "generated_at": utc_now(), "git_commit": git_commit()}
    report["validation"] = {"crops": len(val_records), "results": metrics_for(val_labels, val_scores, thresholds),
                            "per_source": per_group_breakdown(val_records, val_scores, thresholds, lambda r: r.source),
                            "per_generator": per_group_breakdown(
                                val_records, val_scores, thresholds,
                                lambda r: r.generator if r.label else f"REAL: {r.content}")}
    ood_dir = project_path(args.ood_dir)
    ood = load_folder_arrays(ood_dir) if ood_dir.is_dir() else None
    if ood:
        ood_scores = score_arrays(scorers, ood[0], max_tiles)
        report["out_of_domain"] = {"data_dir": args.ood_dir, "images": len(ood[1]),
                                   "results": metrics_for(ood[1], ood_scores, thresholds)}
    report["tile_budget"] = _tile_budget_section(scorers, val_arrays, val_labels, ood, args.tile_budgets, thresholds)
    if len(scorers) > 1:
        report["cifake_stacking_probe"] = cifake_stacking_probe(val_records, val_arrays, val_scores[ENSEMBLE])
    if not args.skip_robustness and len(scorers) > 1:
        report["robustness"] = _robustness_section(scorers, val_arrays, val_labels, ood, ood_dir.name, thresholds,
                                                   max_tiles, args.robustness_sample)
    if args.lofo_dir:
        report["leave_one_family_out"] = leave_one_family_out(project_path(args.lofo_dir), records, val_idx,
                                                              max_tiles)
    _write_report(report, args, argv)
    return report
