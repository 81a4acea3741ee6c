import numpy as np
import pytest

from cifarcam.study import metrics, tables

CLASSES = ["cat", "dog", "frog"]


def test_summary_gives_weighted_and_macro_scores():
    truth = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 0, 0, 1, 1, 0, 2, 2])
    scores = metrics.summary(truth, predicted)
    assert scores["accuracy"] == pytest.approx(6 / 8)
    recall_per_class = np.array([3 / 4, 1 / 2, 1.0])
    assert scores["recall_macro"] == pytest.approx(recall_per_class.mean())
    assert scores["recall"] == pytest.approx((recall_per_class * [4, 2, 2]).sum() / 8)
    precision_per_class = np.array([3 / 4, 1 / 2, 1.0])
    assert scores["precision"] == pytest.approx((precision_per_class * [4, 2, 2]).sum() / 8)
    assert 0 < scores["f1"] < 1 and 0 < scores["f1_macro"] < 1


def test_per_class_reports_support_and_never_divides_by_zero():
    report = metrics.per_class(np.array([0, 0, 1]), np.array([0, 0, 0]), CLASSES)
    assert report["cat"]["support"] == 2 and report["frog"]["support"] == 0
    assert report["dog"]["recall"] == 0.0 and report["frog"]["precision"] == 0.0


def test_most_confused_pairs_count_both_directions():
    truth = np.array([0, 0, 0, 1, 1, 2, 2])
    predicted = np.array([1, 1, 0, 0, 1, 0, 2])
    pairs = metrics.most_confused_pairs(truth, predicted, CLASSES, top=2)
    assert pairs[0] == {"pair": ["cat", "dog"], "count": 3, "cat_as_dog": 2, "dog_as_cat": 1}
    assert pairs[1]["pair"] == ["cat", "frog"] and pairs[1]["count"] == 1


def test_the_results_table_is_in_the_studys_format():
    scores = {"accuracy": 0.5, "precision": 0.25, "recall": 0.5, "f1": 0.3333}
    table = tables.results({"RGB CNN": scores})
    assert table[0] == "| model | accuracy (95% CI) | precision | F1 |"  # weighted recall is the accuracy
    assert table[2] == "| RGB CNN | 50.00% | 25.00% | 33.33% |"


def test_the_results_table_adds_calibration_and_sets_the_chosen_rows_in_bold():
    scores = {
        "accuracy": 0.5,
        "precision": 0.25,
        "recall": 0.5,
        "f1": 0.3333,
        "calibration": {"ece": 0.1, "nll": 1.5, "brier": 0.7},
    }
    table = tables.results({"a": scores, "b": scores}, calibration=True, bold=["b"])
    assert table[0].endswith("| F1 | ECE | NLL | Brier |") and table[2].endswith(
        "| 33.33% | 0.1000 | 1.5000 | 0.7000 |"
    )
    assert table[3].startswith("| **b** | **50.00%** |")


def test_class_errors_and_confusion_shares_are_per_true_class():
    truth = np.array([0, 0, 0, 0, 1, 1])
    predicted = np.array([0, 0, 0, 1, 1, 0])
    assert metrics.class_errors(truth, predicted, CLASSES) == {"cat": 0.25, "dog": 0.5, "frog": 0.0}
    shares = metrics.confusion_shares(truth, predicted, CLASSES)
    assert shares.tolist() == [[0.75, 0.25, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]  # no frog: a row of zeros


def test_markdown_table_shows_the_accuracy_interval_when_known():
    scores = {
        "accuracy": 0.5,
        "precision": 0.25,
        "recall": 0.5,
        "f1": 0.3333,
        "accuracy_ci95_low": 0.4,
        "accuracy_ci95_high": 0.6,
    }
    assert tables.results({"gray ResNet": scores})[2].startswith("| gray ResNet | 50.00% (40.00%–60.00%) |")
