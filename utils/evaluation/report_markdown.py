"""Markdown rendering of the robustness report (docs/evaluation.md) from the numbers robustness_report.py measured.

Text here only says what was measured and how; interpreting the numbers is left to people.
"""
from __future__ import annotations

import math

from utils.data.corruptions import FAMILY_DESCRIPTIONS
from utils.evaluation.markdown import markdown_table
from utils.inference.scoring import ENSEMBLE


def format_epsilon(epsilon: float) -> str:
    """2/255 when epsilon is a whole number of uint8 steps, else the number."""
    steps = epsilon * 255
    return f"{round(steps)}/255" if abs(steps - round(steps)) < 1e-6 else f"{epsilon:.5g}"


def _percent(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.2f}%"


def _number(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.4f}"


def _metric_cells(metrics: dict) -> list[str]:
    return [_percent(metrics["accuracy"]), _number(metrics["precision"]), _number(metrics["recall"]),
            _number(metrics["f1"]), _number(metrics["roc_auc"]), str(metrics["counts"]["misclassified"])]


METRIC_HEADERS = ["accuracy", "precision", "recall", "F1", "ROC-AUC", "misclassified"]


def _counts(counts: dict) -> str:
    return f"{counts['total']:,} ({counts['real']:,} REAL, {counts['fake']:,} FAKE)"


def clean_section(folder: dict) -> str:
    """Clean metrics of every scorer on the folder's corruption sample."""
    sample = folder["corruptions"]["images"]
    text = (f"Every scorer on the {_counts(sample)} images of the corruption sample, unmodified. Labels use each "
            f"scorer's calibrated threshold; FAKE is the positive class.")
    rows = [[scorer, *_metric_cells(m)] for scorer, m in folder["clean"].items()]
    return f"{text}\n\n{markdown_table(['scorer', *METRIC_HEADERS], rows)}"


def fgsm_white_box_section(fgsm: dict, plot: str | None) -> str:
    """Clean, adversarial and mixed metrics when each scorer is attacked directly."""
    share = fgsm["attacked_in_mixed"] / max(fgsm["images"]["total"], 1)
    text = (
        f"FGSM: one step of size epsilon along the sign of the gradient of the cross-entropy of the calibrated "
        f"p_fake with respect to the [0,1] pixels, then clipped to [0,1]. Each model is attacked through its own "
        f"mean/std normalisation; the ensemble is attacked on the cross-entropy of its own p_fake (the mean of the "
        f"models' calibrated p_fake). Measured on {_counts(fgsm['images'])} images. *clean*: the images as they are; "
        f"*adversarial*: every image attacked; *mixed*: {fgsm['attacked_in_mixed']:,} of them ({share:.0%}, "
        f"stratified, seed {fgsm['seed']}) attacked and the rest clean. Epsilons are in pixel units of [0,1] "
        f"(1/255 is one uint8 step).")
    order = list(fgsm["clean"])
    rows = [["0 (clean)", scorer, "clean", *_metric_cells(m)] for scorer, m in fgsm["clean"].items()]
    white_box = sorted((a for a in fgsm["attacks"] if a["white_box"]),
                       key=lambda a: (a["epsilon"], order.index(a["scored_by"])))
    for attack in white_box:
        for kind in ("adversarial", "mixed"):
            rows.append([format_epsilon(attack["epsilon"]), attack["scored_by"], kind, *_metric_cells(attack[kind])])
    table = markdown_table(["epsilon", "scorer", "set", *METRIC_HEADERS], rows)
    image = f"\n\n![FGSM accuracy against epsilon]({plot})" if plot else ""
    return f"{text}\n\n{table}{image}"


def fgsm_transfer_section(fgsm: dict) -> str:
    """Attacks crafted on one scorer and scored by another."""
    transfers = [a for a in fgsm["attacks"] if not a["white_box"]]
    if not transfers:
        return "Only one model was evaluated, so there is no transfer case."
    text = ("The same FGSM images, crafted on the scorer in *crafted on*, scored by a different scorer (which did "
            "not see its gradient, except that an ensemble shares its members). *adversarial*: every image "
            "attacked; the last column is the accuracy on the mixed set.")
    order = list(fgsm["clean"])
    transfers.sort(key=lambda a: (a["epsilon"], order.index(a["crafted_on"]), order.index(a["scored_by"])))
    rows = [[format_epsilon(a["epsilon"]), a["crafted_on"], a["scored_by"], *_metric_cells(a["adversarial"]),
             _percent(a["mixed"]["accuracy"])] for a in transfers]
    return f"{text}\n\n" + markdown_table(["epsilon", "crafted on", "scored by", *METRIC_HEADERS,
                                           "mixed accuracy"], rows)


def corruption_section(sweep: dict, plots: dict[str, str]) -> str:
    """Accuracy, ROC-AUC and verdict flip rate per scorer for each corruption."""
    scorers = list(sweep["clean"])
    families = dict.fromkeys(c["family"] for c in sweep["corruptions"])
    described = "; ".join(f"**{family}**: {FAMILY_DESCRIPTIONS.get(family, family)}" for family in families)
    text = (f"Each corruption is applied to the uint8 images the models see ({_counts(sweep['images'])}), then "
            f"every scorer scores the corrupted copy. *pixel change* is the mean absolute change per pixel and "
            f"channel, in uint8 steps. *flips* is the share of images whose label (at the scorer's calibrated "
            f"threshold) differs from its label on the clean image. {described}. Noise seed {sweep['seed']}.")
    kinds = ("accuracy", "ROC-AUC", "flips")
    headers = ["corruption", "pixel change"] + [f"{scorer} {kind}" for scorer in scorers for kind in kinds]
    clean = sweep["clean"]
    rows = [["clean", "0"] + [cell for s in scorers
                              for cell in (_percent(clean[s]["accuracy"]), _number(clean[s]["roc_auc"]), "-")]]
    for corruption in sweep["corruptions"]:
        result = corruption["scorers"]
        rows.append([f"{corruption['family']} {corruption['label']}", f"{corruption['mean_abs_pixel_change']:.2f}"]
                    + [cell for s in scorers for cell in (_percent(result[s]["accuracy"]),
                                                          _number(result[s]["roc_auc"]),
                                                          _percent(result[s]["flip_rate"]))])
    images = "".join(f"\n\n![{name.replace('_', ' ')} under corruptions]({path})" for name, path in plots.items())
    return f"{text}\n\n{markdown_table(headers, rows)}{images}"


def folder_section(folder: dict, plots: dict[str, str]) -> str:
    """All subsections for one folder."""
    parts = [f"## {folder['title']}", ""]
    if folder.get("note"):
        parts += [folder["note"], ""]
    parts += ["### Clean", "", clean_section(folder), "",
              "### FGSM, white-box", "", fgsm_white_box_section(folder["fgsm"], plots.get("fgsm")), "",
              "### FGSM, transfer", "", fgsm_transfer_section(folder["fgsm"]), "",
              "### Corruptions", "",
              corruption_section(folder["corruptions"],
                                 {k: v for k, v in plots.items() if k.startswith("corruption")}), ""]
    return "\n".join(parts)


def comparison_section(before: dict, comparison: dict) -> str:
    """Clean and white-box FGSM accuracy of the main checkpoints beside another set (e.g. adversarially tuned)."""
    after = comparison["fgsm"]
    title = comparison["title"]
    facts = []
    for name, model in comparison["models"].items():
        adversarial = model.get("adversarial") or {}
        how = (f"FGSM training at epsilon {format_epsilon(adversarial['epsilon'])} on {adversarial['fraction']:.0%} "
               f"of each batch" if adversarial else "no adversarial training recorded")
        start = f", starting from `{model['init_from']}`" if model.get("init_from") else ""
        facts.append([name, f"`{model['file']}`", f"{how}, {model.get('epochs_run')} epoch(s){start}",
                      _percent(comparison["baseline_models"][name].get("test_accuracy")),
                      _percent(model.get("test_accuracy"))])
    text = (f"The same FGSM evaluation (same {_counts(after['images'])} images, same epsilons, each scorer "
            f"attacked through its own gradient) run on the {title} checkpoints. *before* is the shipped model, "
            f"*after* the {title} one. The CIFAKE test accuracy of each model on the whole official test split comes "
            f"from its checkpoint (measured at the end of its training).")
    rows = [[scorer, "0 (clean)", _percent(m["accuracy"]), _percent(after["clean"][scorer]["accuracy"])]
            for scorer, m in before["clean"].items()]
    after_attacks = {(a["epsilon"], a["scored_by"]): a for a in after["attacks"] if a["white_box"]}
    order = list(before["clean"])
    for attack in sorted((a for a in before["attacks"] if a["white_box"]),
                         key=lambda a: (order.index(a["scored_by"]), a["epsilon"])):
        twin = after_attacks.get((attack["epsilon"], attack["scored_by"]))
        rows.append([attack["scored_by"], format_epsilon(attack["epsilon"]),
                     _percent(attack["adversarial"]["accuracy"]),
                     _percent(twin["adversarial"]["accuracy"]) if twin else "n/a"])
    rows.sort(key=lambda r: order.index(r[0]))
    return "\n\n".join([
        text,
        markdown_table(["model", "checkpoint", "training", "CIFAKE test accuracy before", "after"], facts),
        markdown_table(["scorer", "epsilon", "accuracy before", "accuracy after"], rows)])


def render_report(report: dict, json_link: str, plots: dict[str, dict[str, str]]) -> str:
    """The whole docs/evaluation.md."""
    settings = report["settings"]
    minutes, seconds = divmod(round(report["seconds_total"]), 60)
    models = report["models"]
    model_rows = [[name, f"`{m['file']}`", f"{m['temperature']:.3f}", f"{m['threshold']:.3f}",
                   f"{m['input_size']} px", m.get("trained_commit") or "n/a"] for name, m in models.items()]
    if len(models) > 1:
        model_rows.append([ENSEMBLE, "mean of the models' calibrated p_fake", "-",
                           f"{report['ensemble_threshold']:.3f}", "-", "-"])
    data_rows = [[folder["title"], f"`{folder['data_dir']}`", _counts(folder["folder_images"]),
                  f"{folder['sample_sizes']['corruptions']:,}", f"{folder['sample_sizes']['fgsm']:,}"]
                 for folder in report["folders"].values()]
    epsilons = ", ".join(format_epsilon(e) for e in settings["epsilons"])
    lines = [
        "# Robustness evaluation",
        "",
        f"_Generated by `{report['command']}` (what `make report` runs) on {report['generated_at']} at commit "
        f"{report.get('git_commit') or 'n/a'}, in {minutes} min {seconds} s on {settings['threads']} CPU "
        f"thread(s). Every number is also in [{json_link}]({json_link})._",
        "",
        "## What was measured",
        "",
        f"The shipped checkpoints, each with the temperature and threshold stored in it (as served). FAKE is the "
        f"positive class; a label is FAKE when the calibrated p_fake reaches the scorer's threshold. FGSM epsilons: "
        f"{epsilons}. Samples are stratified by class and drawn with seed {settings['seed']}: "
        f"{settings['fgsm_sample'] or 'all'} images requested for FGSM, {settings['corruption_sample'] or 'all'} "
        f"for the clean metrics and corruptions (a folder smaller than that is used whole); with one seed the FGSM "
        f"sample is part of the corruption sample. Attacked and corrupted images are scored in float32.",
        "",
        markdown_table(["scorer", "checkpoint", "temperature", "threshold", "input", "trained at commit"],
                       model_rows),
        "",
        markdown_table(["folder", "path", "images", "corruption sample", "FGSM sample"], data_rows),
        "",
    ]
    for key, folder in report["folders"].items():
        lines.append(folder_section(folder, plots.get(key, {})))
    comparison = report.get("comparison")
    if comparison:
        first = next(iter(report["folders"].values()))
        lines += [f"## Before and after: {comparison['title']}", "",
                  comparison_section(first["fgsm"], comparison), ""]
    return "\n".join(lines).rstrip() + "\n"
