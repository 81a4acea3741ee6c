import math

import numpy as np
import pytest

from cifarcam.study import calibration

CLASSES = 10


def predictor(confidence, correct, rng):
    """Probabilities whose top class (chosen at random) has `confidence`; the truth is that class where `correct`."""
    n = len(confidence)
    predicted = rng.integers(0, CLASSES, n)
    probabilities = np.repeat(((1 - confidence) / (CLASSES - 1))[:, None], CLASSES, axis=1)
    probabilities[np.arange(n), predicted] = confidence
    wrong = (predicted + rng.integers(1, CLASSES, n)) % CLASSES
    return np.where(correct, predicted, wrong), probabilities


def test_a_calibrated_predictor_has_an_ece_near_zero():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.1, 1.0, 200_000)
    truth, probabilities = predictor(confidence, rng.random(200_000) < confidence, rng)
    assert calibration.summary(truth, probabilities, calibration.reliability(truth, probabilities))["ece"] < 0.01


def test_an_overconfident_predictor_has_the_gap_as_its_ece():
    # Always 95% sure, right 60% of the time: one bin, |0.60 - 0.95| = 0.35.
    rng = np.random.default_rng(1)
    confidence = np.full(10_000, 0.95)
    truth, probabilities = predictor(confidence, np.arange(10_000) < 6_000, rng)
    points = calibration.reliability(truth, probabilities, bins=15)
    assert [(p["count"], p["accuracy"]) for p in points] == [(10_000, 0.6)]
    assert points[0]["low"] < 0.95 <= points[0]["high"]
    summary = calibration.summary(truth, probabilities, points)
    assert summary["ece"] == pytest.approx(0.35) and summary["mean_confidence"] == pytest.approx(0.95)


def test_nll_and_brier_by_hand():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.5, 0.25, 0.25]])
    truth = np.array([0, 1])
    summary = calibration.summary(truth, probabilities, calibration.reliability(truth, probabilities))
    assert summary["nll"] == pytest.approx(-(math.log(0.7) + math.log(0.25)) / 2)
    brier_first = 0.3**2 + 0.2**2 + 0.1**2
    brier_second = 0.5**2 + 0.75**2 + 0.25**2
    assert summary["brier"] == pytest.approx((brier_first + brier_second) / 2)


def test_the_bins_count_every_image_once_and_the_ece_weights_them():
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.55, 0.45]])
    truth = np.array([0, 1, 0, 0])
    points = calibration.reliability(truth, probabilities, bins=10)
    assert [p["count"] for p in points] == [2, 2]
    assert points[0]["accuracy"] == 1.0 and points[0]["confidence"] == pytest.approx(0.575)
    assert points[1]["accuracy"] == 0.5 and points[1]["confidence"] == pytest.approx(0.9)
    assert calibration.expected_calibration_error(points) == pytest.approx(0.5 * 0.425 + 0.5 * 0.4)


def test_the_diagram_and_the_ece_bin_the_same_renormalised_probabilities():
    # A row that sums to 0.9 (say, a rounded mean of views) has 0.7999 raw but 0.8888 renormalised.
    probabilities = np.array([[0.7999, 0.1], [0.7999, 0.1]], np.float32)
    points = calibration.reliability(np.array([0, 0]), probabilities, bins=5)
    assert [p["low"] for p in points] == [0.8]
    summary = calibration.summary(np.array([0, 0]), probabilities, points)
    assert summary["ece"] == pytest.approx(1 - 0.7999 / 0.8999, abs=1e-6)
    assert summary["mean_confidence"] == pytest.approx(0.7999 / 0.8999, abs=1e-6)


def test_the_fitted_temperature_recovers_the_one_that_flattened_calibrated_probabilities():
    # Draw labels from softmax(logits): calibrated by construction; then soften by T = 2.5 and fit it back.
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, (20_000, CLASSES))
    exact = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = np.array([rng.choice(CLASSES, p=row) for row in exact])
    softened = calibration.temperature_scaled(exact, 2.5)
    assert calibration.fit_temperature(truth, softened) == pytest.approx(1 / 2.5, rel=0.05)
    restored = calibration.temperature_scaled(softened, 1 / 2.5)
    assert np.allclose(restored, exact, atol=1e-9) and (restored.argmax(axis=1) == softened.argmax(axis=1)).all()


def test_the_bootstrap_intervals_hold_the_scores_and_the_ece_resamples_as_the_diagram_bins():
    rng = np.random.default_rng(4)
    confidence = rng.uniform(0.3, 1.0, 5_000)
    truth, probabilities = predictor(confidence, rng.random(5_000) < confidence - 0.1, rng)
    summary = calibration.summary(truth, probabilities, calibration.reliability(truth, probabilities))
    bounds = calibration.intervals(truth, probabilities)
    for name in ("ece", "nll", "brier"):
        low, high = bounds[f"{name}_ci95_low"], bounds[f"{name}_ci95_high"]
        assert low < summary[name] < high and high - low < 0.1 * summary[name] + 0.02, (name, low, high)


def test_assess_fits_on_validation_and_scores_the_test_split_before_and_after():
    rng = np.random.default_rng(5)
    confidence = rng.uniform(0.2, 0.7, 8_000)  # under-confident: right 95% of the time
    truth, probabilities = predictor(confidence, rng.random(8_000) < 0.95, rng)
    section, points, scaled_points = calibration.assess(
        truth[:4000], probabilities[:4000], truth[4000:], probabilities[4000:]
    )
    assert section["temperature"] < 1 and section["scaled"]["ece"] < section["ece"] / 2
    assert section["scaled"]["nll"] < section["nll"] and all(
        section[f"{name}_ci95_low"] < section[name] < section[f"{name}_ci95_high"] for name in ("ece", "nll", "brier")
    )
    assert sum(p["count"] for p in points) == sum(p["count"] for p in scaled_points) == 4000
