"""The robustness report runs end to end on the committed sample and writes the documented markdown and JSON;
evaluate.py's FGSM options add their table to metrics.json."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

import evaluate
import robustness_report
from utils.inference.scoring import stratified_sample


def _strict_json(path: Path) -> dict:
    def refuse(constant):
        raise AssertionError(f"{path.name} holds {constant}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def report_run(tiny_weights_dir, cifake_test_sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    report = robustness_report.main([
        "--weights", str(tiny_weights_dir / "cnn.pt"), str(tiny_weights_dir / "efficientnet_b0.pt"),
        "--data-dir", str(cifake_test_sample), "--title", "CIFAKE sample",
        "--ood-dir", str(cifake_test_sample), "--ood-title", "Out of domain: stand-in",
        "--output", str(out / "docs" / "evaluation.md"), "--assets-dir", str(out / "docs" / "evaluation"),
        "--fgsm-sample", "24", "--corruption-sample", "40", "--epsilons", "2/255", "8/255",
        "--mixed-fraction", "0.25", "--seed", "3", "--cache-dir", str(out / "cache"), "--threads", "1",
        "--batch-size", "64"])
    return out / "docs", report


def test_report_writes_markdown_with_every_section_and_the_sample_sizes(report_run):
    docs, _ = report_run
    markdown = (docs / "evaluation.md").read_text()
    headings = re.findall(r"^#+ .*$", markdown, flags=re.M)
    assert headings == ["# Robustness evaluation", "## What was measured",
                        "## CIFAKE sample", "### Clean", "### FGSM, white-box", "### FGSM, transfer", "### Corruptions",
                        "## Out of domain: stand-in", "### Clean", "### FGSM, white-box", "### FGSM, transfer",
                        "### Corruptions"]
    assert "24 images requested for FGSM, 40 for the clean metrics and corruptions" in markdown
    assert "| 40 | 24 |" in markdown and "200 (100 REAL, 100 FAKE)" in markdown
    assert "2/255, 8/255" in markdown and "*mixed*: 6 of them (25%" in markdown
    for name in ("jpeg q30", "rescale x0.5", "blur 1px", "noise 5/255"):
        assert f"| {name} |" in markdown
    links = re.findall(r"\]\(([^)]+)\)", markdown)
    assert "evaluation/robustness.json" in links
    images = [link for link in links if link.endswith(".png")]
    assert len(images) == 6
    for link in images:
        assert (docs / link).stat().st_size > 5000, link


def test_report_json_holds_every_number_the_tables_show(report_run):
    docs, _ = report_run
    report = _strict_json(docs / "evaluation" / "robustness.json")
    assert set(report["folders"]) == {"in_domain", "out_of_domain"}
    assert report["settings"]["fgsm_sample"] == 24 and report["settings"]["corruption_sample"] == 40
    assert report["seconds_total"] > 0 and set(report["models"]) == {"cnn", "efficientnet"}
    for folder in report["folders"].values():
        assert folder["sample_sizes"] == {"fgsm": 24, "corruptions": 40}
        assert folder["fgsm"]["images"] == {"total": 24, "real": 12, "fake": 12}
        assert folder["fgsm"]["attacked_in_mixed"] == 6
        assert set(folder["clean"]) == {"cnn", "efficientnet", "ensemble"}
        attacks = folder["fgsm"]["attacks"]
        assert len(attacks) == 2 * 3 * 3  # epsilons x crafted on (2 models + ensemble) x scored by
        assert {(a["crafted_on"], a["scored_by"]) for a in attacks if a["white_box"]} == {
            ("cnn", "cnn"), ("efficientnet", "efficientnet"), ("ensemble", "ensemble")}
        for attack in attacks:
            for kind in ("adversarial", "mixed"):
                metrics = attack[kind]
                assert {"accuracy", "precision", "recall", "f1", "roc_auc", "counts"} <= set(metrics)
                assert sum(map(sum, metrics["confusion_matrix"]["matrix"])) == 24
        corruptions = folder["corruptions"]["corruptions"]
        assert [c["name"] for c in corruptions] == ["jpeg-q95", "jpeg-q90", "jpeg-q75", "jpeg-q50", "jpeg-q30",
                                                    "rescale-x0.75", "rescale-x0.5", "blur-0.5px", "blur-1px",
                                                    "noise-2/255", "noise-5/255"]
        for corruption in corruptions:
            for scorer in ("cnn", "efficientnet", "ensemble"):
                result = corruption["scorers"][scorer]
                assert 0.0 <= result["flip_rate"] <= 1.0 and "roc_auc" in result and "accuracy" in result


def test_stratified_sample_keeps_class_shares_is_seeded_and_nested():
    labels = np.array([0] * 300 + [1] * 100)
    sample = stratified_sample(labels, 40, seed=1)
    assert len(sample) == 40 and (labels[sample] == 1).sum() == 10
    assert np.array_equal(sample, stratified_sample(labels, 40, seed=1))
    assert not np.array_equal(sample, stratified_sample(labels, 40, seed=2))
    assert set(sample) <= set(stratified_sample(labels, 100, seed=1))
    assert np.array_equal(stratified_sample(labels, None, seed=1), np.arange(400))
    assert np.array_equal(stratified_sample(labels, 1000, seed=1), np.arange(400))


def test_evaluate_fgsm_options_add_clean_adversarial_and_mixed_tables(tiny_weights_dir, cifake_test_sample,
                                                                     tmp_path, capsys):
    evaluate.main(["--data-dir", str(cifake_test_sample), "--output", str(tmp_path / "r"), "--weights",
                   str(tiny_weights_dir / "cnn.pt"), str(tiny_weights_dir / "efficientnet_b0.pt"),
                   "--cache-dir", str(tmp_path / "cache"), "--threads", "1", "--fgsm-epsilon", "1/255", "0.0156863",
                   "--fgsm-fraction", "0.5", "--fgsm-sample", "20"])
    report = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert report["images"] == 200, "the clean table still covers the whole folder"
    fgsm = report["fgsm"]
    assert fgsm["images"]["total"] == 20 and fgsm["attacked_in_mixed"] == 10
    assert fgsm["epsilons"] == pytest.approx([1 / 255, 4 / 255], abs=1e-6)
    assert {a["scored_by"] for a in fgsm["attacks"]} == {"cnn", "efficientnet", "ensemble"}
    assert (tmp_path / "r" / "fgsm_accuracy.png").stat().st_size > 5000
    printed = capsys.readouterr().out
    assert "FGSM, white-box" in printed and "| 1/255 | ensemble | mixed |" in printed


def test_evaluate_without_fgsm_options_records_none(tiny_weights_dir, cifake_test_sample, tmp_path):
    evaluate.main(["--data-dir", str(cifake_test_sample), "--output", str(tmp_path / "r"), "--weights",
                   str(tiny_weights_dir / "cnn.pt"), "--cache-dir", str(tmp_path / "cache"), "--threads", "1"])
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["fgsm"] is None


def test_compare_weights_adds_a_before_after_section_on_the_same_fgsm_sample(tiny_weights_dir, cifake_test_sample,
                                                                            tmp_path):
    weights = [str(tiny_weights_dir / "cnn.pt"), str(tiny_weights_dir / "efficientnet_b0.pt")]
    report = robustness_report.main([
        "--weights", *weights, "--compare-weights", *reversed(weights), "--compare-title", "re-loaded",
        "--data-dir", str(cifake_test_sample), "--skip-ood", "--output", str(tmp_path / "evaluation.md"),
        "--assets-dir", str(tmp_path / "assets"), "--fgsm-sample", "16", "--corruption-sample", "16",
        "--epsilons", "4/255", "--cache-dir", str(tmp_path / "cache"), "--threads", "1", "--batch-size", "64"])
    before, after = report["folders"]["in_domain"]["fgsm"], report["comparison"]["fgsm"]
    assert after["images"] == before["images"], "the comparison must use the same images"
    # the same checkpoints on both sides, so the same numbers: the section compares like with like
    assert after["clean"] == before["clean"]
    markdown = (tmp_path / "evaluation.md").read_text()
    assert "## Before and after: re-loaded" in markdown
    accuracy = before["clean"]["ensemble"]["accuracy"]
    assert f"| ensemble | 0 (clean) | {100 * accuracy:.2f}% | {100 * accuracy:.2f}% |" in markdown
    white_box = [a for a in before["attacks"] if a["white_box"] and a["scored_by"] == "cnn"][0]
    assert f"| cnn | 4/255 | {100 * white_box['adversarial']['accuracy']:.2f}% |" in markdown


def test_compare_weights_must_hold_the_same_models(tiny_weights_dir, cifake_test_sample, tmp_path):
    with pytest.raises(ValueError, match="same models"):
        robustness_report.main([
            "--weights", str(tiny_weights_dir / "cnn.pt"), str(tiny_weights_dir / "efficientnet_b0.pt"),
            "--compare-weights", str(tiny_weights_dir / "cnn.pt"), "--data-dir", str(cifake_test_sample),
            "--skip-ood", "--output", str(tmp_path / "e.md"), "--assets-dir", str(tmp_path / "a"),
            "--fgsm-sample", "8", "--corruption-sample", "8", "--epsilons", "4/255",
            "--cache-dir", str(tmp_path / "cache"), "--threads", "1"])
