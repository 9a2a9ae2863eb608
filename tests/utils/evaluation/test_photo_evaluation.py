"""`evaluate.py --profile photo` end to end on the committed photo sample, with tiny untrained checkpoints."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from backend.detector import Detector
from tests.conftest import FIXTURES
from utils.evaluation.photo_evaluation import PERTURBATIONS, main
from utils.imaging.decoding import decode_image
from utils.inference.ensemble import PAIR_FILE

PHOTO_SAMPLE = FIXTURES / "photo_val_sample"


@pytest.mark.slow
def test_the_photo_report_covers_every_section_and_the_pair_threshold_reaches_the_service(tmp_path,
                                                                                           tiny_weights_dir):
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights_dir, weights)
    report = main(["--profile", "photo", "--weights", str(weights / "cnn_photo.pt"),
                   str(weights / "efficientnet_b0_photo.pt"), "--data-dir", str(PHOTO_SAMPLE),
                   "--ood-dir", str(PHOTO_SAMPLE), "--output", str(tmp_path / "report"),
                   "--markdown", str(tmp_path / "report.md"), "--fit-pair", "--robustness-sample", "6",
                   "--tile-budgets", "4", "--threads", "1"])
    assert set(report["validation"]["results"]) == {"cnn", "efficientnet", "ensemble"}
    assert {row["label"] for row in report["validation"]["per_source"]} <= {"REAL", "FAKE", "both"}
    assert set(report["robustness"]["validation sample"]) == {"clean", *PERTURBATIONS}
    assert 0 <= report["robustness"]["validation sample"]["JPEG q75"]["ensemble"]["verdict_flips"] <= 1
    assert "4" in report["tile_budget"] and "photo_pair_plus_cifake_pair" in report["cifake_stacking_probe"]
    markdown = (tmp_path / "report.md").read_text()
    for heading in ("Validation split", "Per generator", "Out of domain", "Robustness", "Fewer tiles"):
        assert heading in markdown
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["thresholds"] == report["thresholds"]

    pair = json.loads((weights / PAIR_FILE).read_text())
    assert pair["threshold"] == report["thresholds"]["ensemble"]
    detector = Detector.from_weights_dir(weights, {"cnn": "cnn.pt", "efficientnet": "efficientnet_b0.pt",
                                                   "cnn_photo": "cnn_photo.pt",
                                                   "efficientnet_photo": "efficientnet_b0_photo.pt"},
                                         runtime="torch", explanations=False)
    assert detector.thresholds["photo"] == pair["threshold"]
    data = next((PHOTO_SAMPLE / "REAL").iterdir()).read_bytes()
    served = detector.predict([decode_image(data)], [data], explain=False)[0]
    assert served["verdict"]["threshold"] == pair["threshold"]


def test_a_pair_file_fitted_on_other_checkpoints_is_ignored(tmp_path, tiny_weights_dir):
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights_dir, weights)
    (weights / PAIR_FILE).write_text(json.dumps({"members": {"cnn": "another run"}, "threshold": 0.9}))
    detector = Detector.from_weights_dir(weights, {"cnn": "cnn.pt", "efficientnet": "efficientnet_b0.pt",
                                                   "cnn_photo": "cnn_photo.pt"}, runtime="torch",
                                         explanations=False)
    assert detector.thresholds["photo"] == pytest.approx(np.mean([m.threshold for m in detector.pairs["photo"]]))


def test_perturbations_keep_the_image_decodable_and_sized():
    array = np.asarray(decode_image(next((PHOTO_SAMPLE / "FAKE").iterdir()).read_bytes()).image)
    for name, (function, argument) in PERTURBATIONS.items():
        out = function(array, argument)
        assert out.dtype == np.uint8 and out.ndim == 3
        expected = round(array.shape[0] * argument) if name.startswith("downscale") else array.shape[0]
        assert out.shape[0] == expected, name
