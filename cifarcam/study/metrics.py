"""Test-set metrics in the study's terms (weighted averages), plus macro averages and confusions."""

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support


def summary(y_true, y_pred):
    """Accuracy with weighted (the study's) and macro precision, recall and F1, as fractions."""
    result = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average, suffix in (("weighted", ""), ("macro", "_macro")):
        precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
        result.update(
            {f"precision{suffix}": float(precision), f"recall{suffix}": float(recall), f"f1{suffix}": float(f1)}
        )
    return result


def per_class(y_true, y_pred, classes):
    labels = np.arange(len(classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    return {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
    }


def most_confused_pairs(y_true, y_pred, classes, top=5):
    """Unordered class pairs ranked by how many test images went either way between them."""
    confusion = confusion_matrix(y_true, y_pred, labels=np.arange(len(classes)))
    mixed = confusion + confusion.T
    pairs = [(int(mixed[a, b]), a, b) for a in range(len(classes)) for b in range(a + 1, len(classes))]
    pairs.sort(key=lambda pair: (-pair[0], pair[1], pair[2]))
    return [
        {
            "pair": [classes[a], classes[b]],
            "count": count,
            f"{classes[a]}_as_{classes[b]}": int(confusion[a, b]),
            f"{classes[b]}_as_{classes[a]}": int(confusion[b, a]),
        }
        for count, a, b in pairs[:top]
    ]


def confusion_shares(y_true, y_pred, classes):
    """The confusion matrix with each row (true class) divided by its count; an empty class's row stays 0."""
    counts = confusion_matrix(y_true, y_pred, labels=np.arange(len(classes))).astype(float)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def class_errors(y_true, y_pred, classes):
    """Top-1 error per class: the share of each class's test images given another class (0 for a class with none)."""
    shares = confusion_shares(y_true, y_pred, classes)
    return {name: float(row.sum() - row[i]) for i, (name, row) in enumerate(zip(classes, shares, strict=True))}
