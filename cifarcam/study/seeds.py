"""What survives retraining: the RGB−gray comparison over training seeds, not over one pair of networks.

One trained network per variant shows that those two networks differ (McNemar); how far the gap
moves when training is repeated needs several seeds. With n seeds:

- the gap per seed, its mean ± sd and a t interval; a paired t test over seeds and the exact
  sign-flip permutation test (all 2^n sign assignments), whose smallest possible p is 2/2^n:
  0.25 with 3 seeds, 0.0625 with 5, so it needs 6 seeds to reach p < 0.05;
- per class, the gain averaged over seeds, with a 95% interval and a p value from each test
  image's seed-averaged difference (a paired t test over the class's images, which with one seed
  is close to McNemar's), Holm-corrected over the ten classes;
- the animal-against-vehicle contrast, fixed before looking: the mean gain over the six animal
  classes minus the mean over the four vehicle classes, each class weighted equally, with its
  normal interval from the per-class variances.

The per-image intervals count test-image sampling and the seeds' disagreement on each image; the
sign-flip test over seeds is the one that says whether a gap would come back with other seeds.
"""

import itertools
import math

import numpy as np
from scipy.stats import norm, t, ttest_1samp

from cifarcam.core.names import CLASSES

ANIMALS = ("bird", "cat", "deer", "dog", "frog", "horse")  # the rest of CIFAR-10's classes are vehicles


def spread(values):
    """{"mean", "sd"} of one score over seeds (sd only from two seeds on)."""
    values = np.asarray(values, float)
    result = {"mean": float(values.mean())}
    if len(values) > 1:
        result["sd"] = float(values.std(ddof=1))
    return result


def sign_flip_p(differences):
    """Two-sided exact p of the sign-flip permutation test: the share of the 2^n sign assignments whose mean
    is at least as far from 0 as the observed one."""
    differences = np.asarray(differences, float)
    signs = np.array(list(itertools.product((1, -1), repeat=len(differences))))
    means = np.abs(signs @ differences) / len(differences)
    return float(np.mean(means >= abs(differences.mean()) - 1e-12))


def gap_over_seeds(gaps, confidence=0.95):
    """The gap per seed summarised: mean, sd, a t interval, the paired t test and the sign-flip test."""
    gaps = np.asarray(gaps, float)
    result = spread(gaps) | {"seeds": len(gaps)}
    if len(gaps) > 1:
        margin = t.ppf(0.5 + confidence / 2, len(gaps) - 1) * result["sd"] / math.sqrt(len(gaps))
        result |= {
            "ci95_low": float(result["mean"] - margin),
            "ci95_high": float(result["mean"] + margin),
            "paired_t_p": float(ttest_1samp(gaps, 0.0).pvalue) if result["sd"] > 0 else 0.0,
            "sign_flip_p": sign_flip_p(gaps),
            "smallest_possible_sign_flip_p": 2 / 2 ** len(gaps),
        }
    return result


def holm(p_values):
    """Holm's step-down adjustment of a list of p values (the family-wise error rate), in the given order."""
    p_values = np.asarray(p_values, float)
    order = np.argsort(p_values)
    adjusted = np.empty_like(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()


def _mean_interval(differences, confidence=0.95):
    """Mean of per-image differences, its normal interval and the paired t test's p."""
    mean = float(differences.mean())
    error = float(differences.std(ddof=1) / math.sqrt(len(differences))) if len(differences) > 1 else 0.0
    margin = float(norm.ppf(0.5 + confidence / 2)) * error
    if error > 0:
        p = float(ttest_1samp(differences, 0.0).pvalue)
    else:  # every image the same difference
        p = 1.0 if mean == 0 else 0.0
    return mean, error, (mean - margin, mean + margin), p


def class_gains(correct_rgb, correct_gray, truth):
    """Per class, RGB's accuracy minus gray's averaged over seeds, with interval, p and Holm's p.

    correct_rgb, correct_gray: (seeds, images) booleans on the same test images, seed by seed.
    """
    differences = np.mean(np.asarray(correct_rgb, float) - np.asarray(correct_gray, float), axis=0)
    truth, rows = np.asarray(truth), {}
    for k, name in enumerate(CLASSES):
        gain, error, (low, high), p = _mean_interval(differences[truth == k])
        rows[name] = {"gain": gain, "ci95_low": low, "ci95_high": high, "p": p, "standard_error": error}
    for name, adjusted in zip(rows, holm([row["p"] for row in rows.values()]), strict=True):
        rows[name]["holm_p"] = adjusted
    return rows


def animals_minus_vehicles(gains, confidence=0.95):
    """The class-balanced contrast: mean gain of the animal classes minus that of the vehicle classes."""
    animals = [name for name in gains if name in ANIMALS]
    vehicles = [name for name in gains if name not in ANIMALS]
    weights = {name: 1 / len(animals) for name in animals} | {name: -1 / len(vehicles) for name in vehicles}
    contrast = sum(weight * gains[name]["gain"] for name, weight in weights.items())
    error = math.sqrt(sum((weight * gains[name]["standard_error"]) ** 2 for name, weight in weights.items()))
    margin = float(norm.ppf(0.5 + confidence / 2)) * error
    p = float(2 * norm.sf(abs(contrast) / error)) if error > 0 else 1.0
    return {"contrast": contrast, "ci95_low": contrast - margin, "ci95_high": contrast + margin, "p": p}


def section(per_seed, gains, variants=("gray", "rgb")):
    """metrics.json's `seeds` from {seed: {variant: its scores, "rgb_vs_gray": the comparison}} and the class
    gains: each seed's, the spread of each score, the gap over seeds and the animal-against-vehicle contrast."""
    spread_of = {
        variant: {
            score: spread([seed[variant][score] for seed in per_seed.values()])
            for score in next(iter(per_seed.values()))[variant]
        }
        for variant in variants
    }
    gaps = [seed["rgb_vs_gray"]["accuracy_difference"] for seed in per_seed.values()]
    return {
        "per_seed": per_seed,
        **spread_of,
        "gap": gap_over_seeds(gaps),
        "animals_minus_vehicles": animals_minus_vehicles(gains),
    }
