"""How sure the test-set figures are: an interval for each accuracy, and gray against RGB on the same images.

Accuracy intervals are Wilson score intervals, which stay inside [0, 1] and keep their coverage
near 0 and 1. Two models seen on the same test images are compared on the images where they
disagree: McNemar's exact test (a binomial test of the discordant counts against 1/2), and the
accuracy difference with the Wald interval for paired proportions (Agresti, Categorical Data
Analysis, section 11.1), which is sound at test-set sizes where both discordant counts are in
the tens or more.
"""

import math

import numpy as np
from scipy.stats import binomtest, norm


def accuracy_interval(correct, confidence=0.95):
    """(low, high) Wilson score interval of the share of True in `correct`, one boolean per test image."""
    interval = binomtest(int(np.sum(correct)), len(correct)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def mcnemar(only_a_right, only_b_right):
    """Two-sided exact p-value of McNemar's test: are both kinds of disagreement equally likely?"""
    discordant = only_a_right + only_b_right
    return float(binomtest(only_a_right, discordant, 0.5).pvalue) if discordant else 1.0


def discordant(correct_a, correct_b):
    """(images only a got right, images only b got right)."""
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    return int(np.sum(correct_a & ~correct_b)), int(np.sum(correct_b & ~correct_a))


def paired_difference(only_a_right, only_b_right, images, confidence=0.95):
    """Accuracy of a minus accuracy of b on the same `images`, and its (low, high) Wald interval."""
    difference = (only_a_right - only_b_right) / images
    standard_error = math.sqrt(max((only_a_right + only_b_right) / images - difference**2, 0.0) / images)
    margin = float(norm.ppf(0.5 + confidence / 2)) * standard_error
    return difference, (difference - margin, difference + margin)


def compare(correct_a, correct_b, names=("a", "b"), confidence=0.95):
    """The comparison section of reports/metrics.json: discordant counts, McNemar's p, the difference, its interval."""
    (a, b), (only_a, only_b) = names, discordant(correct_a, correct_b)
    difference, (low, high) = paired_difference(only_a, only_b, len(correct_a), confidence)
    return {
        f"{a}_right_{b}_wrong": only_a,
        f"{b}_right_{a}_wrong": only_b,
        "mcnemar_p": mcnemar(only_a, only_b),
        "accuracy_difference": difference,
        "accuracy_difference_ci95_low": low,
        "accuracy_difference_ci95_high": high,
    }
