import numpy as np
import pytest

from cifarcam.study import stats


def outcomes(right, total):
    return np.arange(total) < right


def test_the_wilson_interval_of_newcombes_example():
    # Newcombe (1998), Statistics in Medicine 17:857, the example 81/263: Wilson score interval 0.2553 to 0.3662.
    low, high = stats.accuracy_interval(outcomes(81, 263))
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


def test_the_wilson_interval_stays_inside_zero_and_one():
    low, high = stats.accuracy_interval(outcomes(20, 20))
    assert high == pytest.approx(1.0) and 0.8 < low < 0.85  # Wald would give [1, 1]


def test_mcnemars_exact_p_on_the_discordant_pairs():
    # Fagerland, Lydersen and Laake (2013), BMC Medical Research Methodology 13:91: discordant pairs 1 and 7,
    # exact conditional p = 0.070, i.e. 2 * (C(8,0) + C(8,1)) / 2^8 by hand.
    assert stats.mcnemar(1, 7) == pytest.approx(2 * (1 + 8) / 2**8) == pytest.approx(0.0703125)
    assert stats.mcnemar(7, 1) == stats.mcnemar(1, 7)
    assert stats.mcnemar(5, 5) == 1.0 and stats.mcnemar(0, 0) == 1.0


def test_the_paired_difference_of_agrestis_approval_example():
    # Agresti, Categorical Data Analysis (3rd ed.), table 11.1: 1600 people asked twice, 150 and 86 changed their
    # answer either way; difference 0.59 - 0.55 = 0.04 with the 95% interval (0.021, 0.059).
    difference, (low, high) = stats.paired_difference(150, 86, 1600)
    assert difference == pytest.approx(0.04)
    assert (round(low, 3), round(high, 3)) == (0.021, 0.059)


def test_compare_counts_the_disagreements_from_the_predictions():
    a = np.array([1, 1, 1, 0, 0, 1, 1, 0], bool)
    b = np.array([1, 0, 0, 0, 1, 1, 0, 0], bool)
    result = stats.compare(a, b, names=("rgb", "gray"))
    assert result["rgb_right_gray_wrong"] == 3 and result["gray_right_rgb_wrong"] == 1
    assert result["accuracy_difference"] == pytest.approx(a.mean() - b.mean())
    assert result["mcnemar_p"] == pytest.approx(2 * (1 + 4) / 2**4)
    assert (
        result["accuracy_difference_ci95_low"] < result["accuracy_difference"] < result["accuracy_difference_ci95_high"]
    )
