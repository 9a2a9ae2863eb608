"""Robustness report of the shipped models: FGSM (white-box and transfer), corruptions, out-of-domain data.

Example (what `make report` runs):
    python robustness_report.py --data-dir data/cifake/test --ood-dir data/sd-vs-coco-200 --output docs/evaluation.md
Writes the markdown, and robustness.json plus PNG plots in --assets-dir (default: docs/evaluation). FGSM and the
corruption sweep run on seeded, class-stratified samples (--fgsm-sample, --corruption-sample) so the whole report
stays within minutes on a small CPU; the report states the sample sizes it used.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import sys
import time
from pathlib import Path

import torch

from utils.config import PROJECT_ROOT, load_config, project_path
from utils.data.folders import load_image_folder
from utils.entry_point import USER_ERRORS, run_entry_point
from utils.errors import ModelUnavailable
from utils.evaluation.adversarial import parse_epsilon
from utils.evaluation.report_markdown import render_report
from utils.evaluation.report_plots import plot_corruption_curves, plot_fgsm_accuracy
from utils.evaluation.robustness import analyse_folder, fgsm_evaluation
from utils.inference.checkpoint import git_commit, utc_now
from utils.inference.ensemble import ensemble_threshold
from utils.inference.scoring import common_input_size, load_calibrated_models, stratified_sample

log = logging.getLogger(__name__)


def get_args_parser(defaults: dict) -> argparse.ArgumentParser:
    """Command-line flags; defaults come from config evaluation.robustness."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="config file (default: config/config.yaml)")
    parser.add_argument("--data-dir", default=defaults.get("data_dir"), help="in-domain folder with REAL/, FAKE/")
    parser.add_argument("--title", help="heading for the in-domain folder (default: its path)")
    parser.add_argument("--ood-dir", default=defaults.get("ood_dir"), help="out-of-domain folder with REAL/, FAKE/")
    parser.add_argument("--ood-title", help="heading for the out-of-domain folder (default: from its path)")
    parser.add_argument("--skip-ood", action="store_true", help="leave the out-of-domain folder out")
    parser.add_argument("--weights", nargs="+", default=None,
                        help="checkpoint files (default: every model in config models.*.output)")
    parser.add_argument("--compare-weights", nargs="+", metavar="CHECKPOINT",
                        help="other checkpoints of the same models (e.g. adversarially fine-tuned ones): FGSM on the "
                             "same in-domain sample, reported before/after beside the main ones")
    parser.add_argument("--compare-title", default="adversarially fine-tuned",
                        help="what the --compare-weights checkpoints are, for the report")
    parser.add_argument("--output", default=defaults.get("output", "docs/evaluation.md"), help="markdown to write")
    parser.add_argument("--assets-dir", default=defaults.get("assets_dir", "docs/evaluation"),
                        help="folder for robustness.json and the plots")
    parser.add_argument("--fgsm-sample", type=int, default=defaults.get("fgsm_sample"),
                        help="images per folder for FGSM (stratified, seeded; 0 = all)")
    parser.add_argument("--corruption-sample", type=int, default=defaults.get("corruption_sample"),
                        help="images per folder for the clean metrics and corruptions (stratified, seeded; 0 = all)")
    parser.add_argument("--epsilons", nargs="+", type=parse_epsilon, default=None,
                        help="FGSM epsilons in pixel units of [0,1], e.g. 1/255 2/255 or 0.0078")
    parser.add_argument("--mixed-fraction", type=float, default=defaults.get("mixed_fraction", 0.5),
                        help="share of the FGSM sample attacked in the 'mixed' set")
    parser.add_argument("--seed", type=int, default=defaults.get("seed", 0))
    parser.add_argument("--cache-dir", default=None, help="decoded-image cache (default: config data.cache_dir)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    return parser


def _json_safe(value):
    """NaN (e.g. ROC-AUC of a one-class set) as null, so the file is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def _display_path(path: str | Path) -> str:
    """A folder as the report shows it: relative to the project root when inside it."""
    resolved = project_path(path).resolve()
    try:
        return resolved.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-") or "folder"


def write_plots(report: dict, assets_dir: Path, link_base: Path) -> dict[str, dict[str, str]]:
    """The FGSM and corruption plots of every folder; returns their paths relative to the markdown file."""
    links: dict[str, dict[str, str]] = {}
    for key, folder in report["folders"].items():
        slug = _slug(key)
        files = {"fgsm": assets_dir / f"{slug}-fgsm-accuracy.png",
                 "corruption_accuracy": assets_dir / f"{slug}-corruption-accuracy.png",
                 "corruption_flip_rate": assets_dir / f"{slug}-corruption-flip-rate.png"}
        plot_fgsm_accuracy(folder["fgsm"], files["fgsm"], folder["title"])
        plot_corruption_curves(folder["corruptions"], "accuracy", files["corruption_accuracy"], folder["title"])
        plot_corruption_curves(folder["corruptions"], "flip_rate", files["corruption_flip_rate"], folder["title"])
        links[key] = {name: Path(os.path.relpath(path, link_base)).as_posix() for name, path in files.items()}
    report["plots"] = links
    return links


def _model_facts(member) -> dict:
    training = member.metadata.get("training") or {}
    test = (member.metadata.get("metrics") or {}).get("test") or {}
    return {"file": member.file, "adversarial": training.get("adversarial"),
            "init_from": (training.get("init_from") or {}).get("file"), "epochs_run": training.get("epochs_run"),
            "test_accuracy": test.get("accuracy"), "test_images": (test.get("counts") or {}).get("total")}


def load_comparison(paths: list[Path], baseline: list) -> list:
    """The --compare-weights checkpoints, refused unless they are the same models as the report's."""
    others = load_calibrated_models(paths)
    if sorted(m.name for m in others) != sorted(m.name for m in baseline):
        raise ValueError(f"--compare-weights must hold the same models as the report "
                         f"({sorted(m.name for m in baseline)}), got {sorted(m.name for m in others)}")
    return others


def compare_checkpoints(others: list, baseline: list, data_dir: Path, cache_dir: Path,
                        args: argparse.Namespace, epsilons: list[float]) -> dict:
    """FGSM on the in-domain FGSM sample (the same images as the main report) with another set of checkpoints."""
    data = load_image_folder(data_dir, common_input_size(others), cache_dir)
    labels = data.labels.numpy()
    index = stratified_sample(labels, args.fgsm_sample or None, args.seed)
    fgsm = fgsm_evaluation(others, data.images[index], labels[index], epsilons, args.mixed_fraction, args.seed,
                           batch_size=min(args.batch_size, 256))
    return {"models": {m.name: _model_facts(m) for m in others},
            "baseline_models": {m.name: _model_facts(m) for m in baseline}, "fgsm": fgsm}


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, dict, list[float]]:
    """The flags (their defaults from config evaluation.robustness), the config, and the epsilons to run."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    config = load_config(pre.parse_known_args(argv)[0].config)
    defaults = config.get("evaluation", {}).get("robustness", {})
    args = get_args_parser(defaults).parse_args(argv)
    epsilons = args.epsilons or [parse_epsilon(e) for e in defaults.get("epsilons", ["1/255", "2/255", "4/255",
                                                                                      "8/255"])]
    if not args.data_dir:
        raise ValueError("no --data-dir given and none in config evaluation.robustness.data_dir")
    return args, config, epsilons


def measure_folders(members: list, args: argparse.Namespace, cache_dir: Path, epsilons: list[float]) -> dict:
    """analyse_folder on the in-domain folder and, unless skipped, the out-of-domain one."""
    folders = [("in_domain", args.data_dir, args.title or _display_path(args.data_dir), None)]
    if args.ood_dir and not args.skip_ood:
        folders.append(("out_of_domain", args.ood_dir,
                        args.ood_title or f"Out of domain: {_display_path(args.ood_dir)}",
                        "Out-of-domain images are decoded and resized to the models' input size by the same loader "
                        "as training and serving (bicubic, stretching to a square) before anything else; attacks "
                        "and corruptions act on those resized images."))
    measured = {}
    for key, data_dir, title, note in folders:
        log.info("measuring %s (%s)", title, data_dir)
        folder = analyse_folder(members, project_path(data_dir), cache_dir, args.fgsm_sample or None,
                                args.corruption_sample or None, epsilons, args.mixed_fraction, args.seed,
                                args.batch_size)
        measured[key] = {"title": title, "note": note, **folder, "data_dir": _display_path(data_dir)}
    return measured


def _models_section(members: list) -> dict:
    return {m.name: {"file": m.file, "temperature": m.temperature, "threshold": m.threshold,
                     "input_size": m.spec.input_size, "mean": list(m.spec.mean), "std": list(m.spec.std),
                     "trained_at": m.metadata.get("created_at"), "trained_commit": m.metadata.get("git_commit")}
            for m in members}


def write_outputs(report: dict, args: argparse.Namespace, started: float) -> None:
    """The plots, robustness.json (with the total time) and the markdown report."""
    output = project_path(args.output)
    assets_dir = project_path(args.assets_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    assets_dir.mkdir(parents=True, exist_ok=True)
    plots = write_plots(report, assets_dir, output.parent)
    report["seconds_total"] = round(time.time() - started, 1)
    json_path = assets_dir / "robustness.json"
    json_path.write_text(json.dumps(_json_safe(report), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    json_link = Path(os.path.relpath(json_path, output.parent)).as_posix()
    output.write_text(render_report(report, json_link, plots), encoding="utf-8")
    print(f"wrote {output}, {json_path} and {sum(len(p) for p in plots.values())} plots "
          f"in {report['seconds_total']:.0f}s")


def main(argv: list[str] | None = None) -> dict:
    """Measure every folder, then write robustness.json, the plots and the markdown report."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    args, config, epsilons = parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    started = time.time()

    checkpoints = [Path(p) for p in args.weights] if args.weights else [
        project_path(section["output"]) for name, section in config["models"].items()
        if not name.endswith("_photo")]  # the CIFAKE pair; `evaluate.py --profile photo` evaluates the photo one
    members = load_calibrated_models(checkpoints)
    others = load_comparison([Path(p) for p in args.compare_weights], members) if args.compare_weights else None
    cache_dir = project_path(args.cache_dir or config["data"]["cache_dir"])
    measured = measure_folders(members, args, cache_dir, epsilons)

    comparison = None
    if others:
        log.info("FGSM on the same sample with %s", ", ".join(args.compare_weights))
        comparison = compare_checkpoints(others, members, project_path(args.data_dir), cache_dir, args, epsilons)
        comparison["title"] = args.compare_title

    report = {
        "generated_at": utc_now(), "git_commit": git_commit(),
        "command": "python robustness_report.py " + " ".join(shlex.quote(a) for a in argv),
        "settings": {"fgsm_sample": args.fgsm_sample or None, "corruption_sample": args.corruption_sample or None,
                     "epsilons": epsilons, "mixed_fraction": args.mixed_fraction, "seed": args.seed,
                     "threads": threads, "batch_size": args.batch_size},
        "models": _models_section(members),
        "ensemble_rule": "mean of the models' calibrated p_fake; threshold = mean of the models' thresholds",
        "ensemble_threshold": ensemble_threshold([m.threshold for m in members]),
        "folders": measured,
        "comparison": comparison,
    }
    write_outputs(report, args, started)
    return report


if __name__ == "__main__":
    run_entry_point(main, (ModelUnavailable, *USER_ERRORS))
