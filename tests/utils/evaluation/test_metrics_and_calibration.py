"""Metrics agree with scikit-learn; calibration recovers known temperatures; thresholds come from data."""
import numpy as np
import pytest
import torch
from sklearn import metrics as sk

from utils.evaluation.metrics import average_precision, binary_metrics, expected_calibration_error, roc_auc
from utils.inference.calibration import choose_threshold, fit_temperature, p_fake_from_logits

RNG = np.random.default_rng(0)
LABELS = RNG.integers(0, 2, 500)
SCORES = np.clip(LABELS * 0.3 + RNG.random(500) * 0.7, 0, 1).round(2)  # rounding creates ties on purpose


def test_roc_auc_matches_sklearn_with_ties():
    assert roc_auc(LABELS, SCORES) == pytest.approx(sk.roc_auc_score(LABELS, SCORES), abs=1e-12)


def test_average_precision_matches_sklearn_with_ties():
    assert average_precision(LABELS, SCORES) == pytest.approx(sk.average_precision_score(LABELS, SCORES), abs=1e-12)


def test_threshold_metrics_match_sklearn():
    m = binary_metrics(LABELS, SCORES, 0.5)
    predicted = (SCORES >= 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(LABELS, predicted))
    assert m["precision"] == pytest.approx(sk.precision_score(LABELS, predicted))
    assert m["recall"] == pytest.approx(sk.recall_score(LABELS, predicted))
    assert m["f1"] == pytest.approx(sk.f1_score(LABELS, predicted))
    assert m["confusion_matrix"]["matrix"] == sk.confusion_matrix(LABELS, predicted).tolist()


def test_ece_of_a_hand_worked_example():
    # Two bins used: confidence 0.9 (4 samples, 3 right -> gap 0.15) and 0.6 (2 samples, 2 right -> gap 0.4).
    labels = np.array([1, 1, 1, 0, 0, 0])
    p_fake = np.array([0.9, 0.9, 0.9, 0.9, 0.4, 0.4])
    assert expected_calibration_error(labels, p_fake) == pytest.approx((4 * 0.15 + 2 * 0.4) / 6)


@pytest.mark.parametrize("true_temperature", [0.5, 2.5])
def test_temperature_scaling_recovers_the_temperature_that_generated_the_labels(true_temperature):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(20000, 2, generator=generator) * 3
    p = torch.softmax(logits / true_temperature, dim=1)[:, 1]
    labels = (torch.rand(20000, generator=generator) < p).long()
    assert fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.05)


def test_temperature_scaling_lowers_ece_of_overconfident_scores():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(5000, 2, generator=generator) * 2
    labels = (torch.rand(5000, generator=generator) < torch.softmax(logits, 1)[:, 1]).long()
    overconfident = logits * 4
    temperature = fit_temperature(overconfident, labels)
    before = expected_calibration_error(labels.numpy(), p_fake_from_logits(overconfident).numpy())
    after = expected_calibration_error(labels.numpy(), p_fake_from_logits(overconfident, temperature).numpy())
    assert after < before / 3


def test_threshold_is_chosen_where_the_classes_separate():
    p_fake = np.array([0.1, 0.2, 0.3, 0.65, 0.7, 0.9])
    labels = np.array([0, 0, 0, 1, 1, 1])
    threshold = choose_threshold(p_fake, labels)
    assert 0.3 < threshold <= 0.65
    assert threshold == pytest.approx(0.5)  # the accuracy plateau is wide; ties go to 0.5
