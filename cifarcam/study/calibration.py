"""Are the models' probabilities honest? Expected calibration error, negative log-likelihood and Brier score.

The expected calibration error (Guo et al. 2017) bins the test images by the confidence of the
predicted class into equal-width bins and averages |accuracy - mean confidence| over the bins,
weighted by their image counts: 0 when a confidence of 0.8 is right 80% of the time.
"""

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss


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
