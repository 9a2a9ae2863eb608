"""evaluate.py writes the documented report: metrics per model and for the ensemble, and the plots."""
import json

import pytest
from sklearn.metrics import roc_auc_score

import evaluate


def test_report_has_every_metric_for_each_model_and_the_ensemble(tiny_weights_dir, cifake_test_sample, tmp_path):
    evaluate.main(["--data-dir", str(cifake_test_sample), "--output", str(tmp_path / "report"), "--weights",
                   str(tiny_weights_dir / "cnn.pt"), str(tiny_weights_dir / "efficientnet_b0.pt"),
                   "--cache-dir", str(tmp_path / "cache"), "--threads", "1"])
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert report["images"] == 200
    assert set(report["results"]) == {"cnn", "efficientnet", "ensemble"}
    for result in report["results"].values():
        assert {"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "ece", "confusion_matrix",
                "counts", "threshold"} <= set(result)
        assert sum(map(sum, result["confusion_matrix"]["matrix"])) == 200
    for png in ("confusion_matrices.png", "roc.png", "precision_recall.png", "reliability.png"):
        assert (tmp_path / "report" / png).stat().st_size > 5000, png


def test_ensemble_auc_is_computed_on_the_mean_probability(tiny_weights_dir, cifake_test_sample, tmp_path):
    labels, _, scores, _ = evaluate.score_folder(
        [tiny_weights_dir / "cnn.pt", tiny_weights_dir / "efficientnet_b0.pt"], cifake_test_sample, None, 64)
    mean = (scores["cnn"] + scores["efficientnet"]) / 2
    evaluate.main(["--data-dir", str(cifake_test_sample), "--output", str(tmp_path / "r"), "--weights",
                   str(tiny_weights_dir / "cnn.pt"), str(tiny_weights_dir / "efficientnet_b0.pt"),
                   "--cache-dir", str(tmp_path / "cache"), "--threads", "1"])
    report = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert report["results"]["ensemble"]["roc_auc"] == pytest.approx(roc_auc_score(labels, mean), abs=1e-9)
