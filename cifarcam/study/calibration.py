"""Are the models' probabilities honest? Expected calibration error, negative log-likelihood and Brier score.

The expected calibration error (Guo et al. 2017) bins the test images by the confidence of the
predicted class into equal-width bins and averages |accuracy - mean confidence| over the bins,
weighted by their image counts: 0 when a confidence of 0.8 is right 80% of the time.

Temperature scaling (Guo et al. 2017) divides the log-probabilities by one number T, fitted on the
validation split by the negative log-likelihood: T < 1 sharpens an under-confident model, T > 1
softens an over-confident one, and no prediction changes.
"""

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss

TEMPERATURES = (0.05, 20.0)  # the search range of the fitted temperature
RESAMPLES = 1000  # bootstrap resamples of the images behind each interval


def normalised(probabilities):
    """float64 rows that sum to 1 (a model's float32 softmax, or a mean of several, misses by rounding)."""
    probabilities = np.asarray(probabilities, np.float64)
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def reliability(truth, probabilities, bins=15):
    """The reliability diagram's points: one dict per non-empty bin with its edges, confidence, accuracy, count."""
    probabilities = normalised(probabilities)
    confidence = np.clip(np.max(probabilities, axis=1), 0.0, 1.0)
    correct = np.argmax(probabilities, axis=1) == np.asarray(truth)
    accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=bins, strategy="uniform")
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], confidence), minlength=bins)  # calibration_curve's binning
    filled = np.flatnonzero(counts)
    return [
        {
            "low": float(edges[i]),
            "high": float(edges[i + 1]),
            "confidence": float(c),
            "accuracy": float(a),
            "count": int(counts[i]),
        }
        for i, c, a in zip(filled, mean_confidence, accuracy, strict=True)
    ]


def expected_calibration_error(points):
    total = sum(point["count"] for point in points)
    return float(sum(point["count"] / total * abs(point["accuracy"] - point["confidence"]) for point in points))


def summary(truth, probabilities, points):
    """The `calibration` section of reports/metrics.json for one model (Brier: summed over classes, in [0, 2]).

    `points` is `reliability(truth, probabilities, bins)`, the diagram's, so that the ECE is the diagram's.
    """
    probabilities = normalised(probabilities)
    labels = np.arange(probabilities.shape[1])
    return {
        "ece": expected_calibration_error(points),
        "nll": float(log_loss(truth, probabilities, labels=labels)),
        "brier": float(brier_score_loss(truth, probabilities, labels=labels)),
        "mean_confidence": float(np.max(probabilities, axis=1).mean()),
    }


def temperature_scaled(probabilities, temperature):
    """softmax(log p / T) of each row: the probabilities at temperature T (for a mean over TTA views, of its log)."""
    logits = np.log(np.clip(normalised(probabilities), 1e-12, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(truth, probabilities):
    """The temperature that minimises the negative log-likelihood of `truth` (the validation split's labels)."""
    labels = np.arange(np.shape(probabilities)[1])

    def nll(log_temperature):
        return log_loss(truth, temperature_scaled(probabilities, np.exp(log_temperature)), labels=labels)

    low, high = np.log(TEMPERATURES)
    return float(np.exp(minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-6}).x))


def intervals(truth, probabilities, bins=15, seed=0):
    """95% bootstrap intervals over images of the ECE, the NLL and the Brier score, as flat numbers that
    `dvc metrics` can show and diff: {"ece_ci95_low": ..., "ece_ci95_high": ..., ...}."""
    probabilities, truth = normalised(probabilities), np.asarray(truth)
    count, classes = probabilities.shape
    confidence, correct = probabilities.max(axis=1), probabilities.argmax(axis=1) == truth
    nll = -np.log(np.clip(probabilities[np.arange(count), truth], 1e-15, None))
    brier = ((probabilities - np.eye(classes)[truth]) ** 2).sum(axis=1)
    binned = np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], confidence)
    draws = np.random.default_rng(seed).integers(0, count, (RESAMPLES, count))
    gaps = []
    for draw in draws:
        gap = np.bincount(binned[draw], weights=correct[draw] - confidence[draw], minlength=bins)
        gaps.append(np.abs(gap).sum() / count)  # sum over bins of |n_b (accuracy_b - confidence_b)| / N
    scores = {"ece": np.array(gaps), "nll": nll[draws].mean(axis=1), "brier": brier[draws].mean(axis=1)}
    bounds = {}
    for name, values in scores.items():
        low, high = np.percentile(values, [2.5, 97.5])
        bounds |= {f"{name}_ci95_low": float(low), f"{name}_ci95_high": float(high)}
    return bounds


def assess(truth, probabilities, validation_truth, validation_probabilities, bins=15):
    """The `calibration` section of one model: the scores with their intervals, then the same after a
    temperature fitted on the validation split; and both reliability diagrams' points."""
    temperature = fit_temperature(validation_truth, validation_probabilities)
    scaled = temperature_scaled(probabilities, temperature)
    points, scaled_points = reliability(truth, probabilities, bins), reliability(truth, scaled, bins)
    section = summary(truth, probabilities, points) | intervals(truth, probabilities, bins)
    section["temperature"] = temperature
    section["scaled"] = summary(truth, scaled, scaled_points) | intervals(truth, scaled, bins)
    return section, points, scaled_points
