import itertools

import numpy as np
import pytest
from scipy import stats as scipy_stats

from cifarcam.core.names import CLASSES
from cifarcam.study import seeds, stats


def test_the_sign_flip_test_counts_every_assignment():
    assert seeds.sign_flip_p([0.018, 0.016, 0.015]) == 0.25  # all positive: 2 of the 8 assignments are as far
    assert seeds.sign_flip_p([1, 2, 3, 4, 5]) == 2 / 32
    assert seeds.sign_flip_p([1, -1, 2, -2]) == 1.0
    gaps = np.array([0.5, -0.1, 0.3, 0.2, 0.4, -0.05])
    brute = np.mean(
        [abs(np.mean(gaps * signs)) >= abs(gaps.mean()) for signs in itertools.product((1, -1), repeat=len(gaps))]
    )
    assert seeds.sign_flip_p(gaps) == pytest.approx(brute)


def test_the_gap_over_seeds_has_the_t_interval_and_the_paired_t_test():
    gaps = [0.0188, 0.0157, 0.0152]
    result = seeds.gap_over_seeds(gaps)
    low, high = scipy_stats.t.interval(0.95, 2, loc=np.mean(gaps), scale=scipy_stats.sem(gaps))
    assert result["ci95_low"] == pytest.approx(low) and result["ci95_high"] == pytest.approx(high)
    assert result["paired_t_p"] == pytest.approx(scipy_stats.ttest_rel(gaps, [0, 0, 0]).pvalue)
    assert result["sd"] == pytest.approx(np.std(gaps, ddof=1)) and result["smallest_possible_sign_flip_p"] == 0.25
    assert seeds.gap_over_seeds([0.02]) == {"mean": 0.02, "seeds": 1}  # one seed: no spread, no test


def test_holm_matches_the_step_down_by_hand():
    # sorted: 0.01·4 = 0.04, 0.03·3 = 0.09, 0.04·2 = 0.08 → 0.09 (monotone), 0.5·1 = 0.5
    assert seeds.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert seeds.holm([0.3, 0.6]) == pytest.approx([0.6, 0.6]) and seeds.holm([0.9, 0.9, 0.9]) == [
        1.0,
        1.0,
        1.0,
    ]  # capped at 1


def balanced_run(rng, gray_accuracy, rgb_accuracy, per_class=1000):
    truth = np.repeat(np.arange(len(CLASSES)), per_class)
    gray = rng.random(truth.size) < np.asarray(gray_accuracy)[truth]
    rgb = rng.random(truth.size) < np.asarray(rgb_accuracy)[truth]
    return truth, rgb, gray


def test_with_one_seed_a_class_gain_is_its_accuracy_difference_and_close_to_mcnemar():
    rng = np.random.default_rng(0)
    gray_accuracy = np.full(10, 0.85)
    truth, rgb, gray = balanced_run(rng, gray_accuracy, gray_accuracy + np.r_[0.05, np.zeros(9)])
    gains = seeds.class_gains([rgb], [gray], truth)
    for k, name in enumerate(CLASSES):
        mine = truth == k
        assert gains[name]["gain"] == pytest.approx(rgb[mine].mean() - gray[mine].mean())
        assert gains[name]["ci95_low"] < gains[name]["gain"] < gains[name]["ci95_high"]
        exact = stats.mcnemar(*stats.discordant(rgb[mine], gray[mine]))
        assert gains[name]["p"] == pytest.approx(exact, rel=0.6, abs=0.01), name
    assert gains["airplane"]["holm_p"] < 0.05 and all(gains[name]["holm_p"] >= gains[name]["p"] for name in CLASSES)


def test_more_seeds_narrow_the_pooled_interval_and_the_gain_is_their_mean():
    rng = np.random.default_rng(1)
    accuracy = np.full(10, 0.8)
    runs = [balanced_run(rng, accuracy, accuracy + 0.02) for _ in range(4)]
    truth = runs[0][0]
    one = seeds.class_gains([runs[0][1]], [runs[0][2]], truth)
    four = seeds.class_gains([r[1] for r in runs], [r[2] for r in runs], truth)
    for k, name in enumerate(CLASSES):
        per_seed = [r[1][truth == k].mean() - r[2][truth == k].mean() for r in runs]
        assert four[name]["gain"] == pytest.approx(np.mean(per_seed))
    widths = [g[name]["ci95_high"] - g[name]["ci95_low"] for g in (one, four) for name in CLASSES]
    assert np.mean(widths[10:]) < 0.7 * np.mean(widths[:10])


def test_the_animal_contrast_weights_each_class_equally_and_covers_the_truth():
    rng = np.random.default_rng(2)
    gain = np.array([0.0, 0.0, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.0, 0.0])  # +4 points on the six animals
    covered = 0
    for _ in range(40):
        truth, rgb, gray = balanced_run(rng, np.full(10, 0.8), 0.8 + gain)
        gains = seeds.class_gains([rgb], [gray], truth)
        contrast = seeds.animals_minus_vehicles(gains)
        by_hand = np.mean([gains[n]["gain"] for n in seeds.ANIMALS]) - np.mean(
            [gains[n]["gain"] for n in CLASSES if n not in seeds.ANIMALS]
        )
        assert contrast["contrast"] == pytest.approx(by_hand)
        covered += contrast["ci95_low"] <= 0.04 <= contrast["ci95_high"]
    assert covered >= 34  # a 95% interval: about 38 of 40


def test_the_seed_section_keeps_each_seed_and_spreads_each_score():
    comparison = {"accuracy_difference": 0.02}
    per_seed = {
        "1": {"gray": {"accuracy": 0.88}, "rgb": {"accuracy": 0.90}, "rgb_vs_gray": comparison},
        "2": {"gray": {"accuracy": 0.89}, "rgb": {"accuracy": 0.90}, "rgb_vs_gray": {"accuracy_difference": 0.01}},
    }
    truth, rgb, gray = balanced_run(np.random.default_rng(3), np.full(10, 0.8), np.full(10, 0.82), per_class=50)
    section = seeds.section(per_seed, seeds.class_gains([rgb, rgb], [gray, gray], truth))
    assert section["per_seed"] == per_seed and section["gray"]["accuracy"]["mean"] == pytest.approx(0.885)
    assert section["gap"]["mean"] == pytest.approx(0.015) and section["gap"]["sign_flip_p"] == 0.5
    assert {"contrast", "ci95_low", "ci95_high", "p"} == section["animals_minus_vehicles"].keys()
