"""The results tables, one builder for each copy: reports/results.md, the write-up's and the README's headline.

`python -m cifarcam.study.tables --seeds <a multi-seed run's metrics.json>` prints the README's headline
table from reports/metrics.json, params.yaml and that run; a test checks that the README carries
exactly that table.
"""

import json
from pathlib import Path

# Weighted averages, as the study reports them; weighted recall is left out: on CIFAR-10's balanced test set
# it is the accuracy.
SCORES = {"precision": "precision", "f1": "F1"}
CALIBRATION = {"ece": "ECE", "nll": "NLL", "brier": "Brier"}
# The study this pipeline reruns, as it published its figures (weighted averages on the official test set).
PUBLISHED = {
    "the study's grayscale CNN (its figures)": {
        "accuracy": "79.6%",
        "precision": "80.2%",
        "f1": "79.3%",
    },
    "the study's RGB CNN (its figures)": {
        "accuracy": "94.77%",
        "precision": "94.89%",
        "f1": "94.80%",
    },
}


def percent(share):
    return f"{100 * share:.2f}%"


def _cell(value):
    return value if isinstance(value, str) else percent(value)


def _accuracy(scores):
    cell = _cell(scores["accuracy"])
    if "accuracy_ci95_low" in scores:
        cell += f" ({percent(scores['accuracy_ci95_low'])}–{percent(scores['accuracy_ci95_high'])})"
    return cell


def results(rows, calibration=False, bold=()):
    """Markdown lines of the results table: {label: scores}, one row each, accuracy with its 95% interval
    where the scores have one; with `calibration`, each row's ECE, NLL and Brier score too. Labels in
    `bold` are set in bold (the README's default run)."""
    header = ["model", "accuracy (95% CI)", *SCORES.values(), *(CALIBRATION.values() if calibration else ())]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, scores in rows.items():
        cells = [label, _accuracy(scores), *(_cell(scores[key]) for key in SCORES)]
        cells += [f"{scores['calibration'][key]:.4f}" for key in CALIBRATION] if calibration else []
        if label in bold:
            cells = [f"**{cell}**" for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def results_page(scores, details, labels):
    """reports/results.md: the study's table, then each model's per-class scores and most confused pairs."""
    intro = (
        "Weighted averages over the ten classes, as the study reports them (accuracy with its 95% Wilson interval; "
        "weighted recall equals accuracy on this balanced test set)."
    )
    lines = ["# Test-set results", "", intro, "", *results({labels[v]: scores[v] for v in labels}), ""]
    for variant, label in labels.items():
        detail = details[variant]
        lines += [f"## {label}", "", "| class | precision | recall | F1 |", "|---|---|---|---|"]
        lines += [
            f"| {name} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} |"
            for name, c in detail["per_class"].items()
        ]
        pairs = ", ".join(f"{p['pair'][0]}/{p['pair'][1]} ({p['count']})" for p in detail["most_confused_pairs"])
        lines += ["", f"Most confused pairs (test images either way): {pairs}", ""]
    return "\n".join(lines)


def _mean_sd(spread):
    return f"{percent(spread['mean'])} ± {100 * spread['sd']:.2f}"


def headline(metrics, labels, seed_study=None):
    """The README's table: the study's published figures, this pipeline's default run, and with `seed_study`
    (the metrics.json of a run over several seeds) each model's mean ± sd over those seeds."""
    ours = {f"{labels[v]}, the default": metrics[v] for v in labels}
    lines = results(PUBLISHED | ours, bold=ours)
    if seed_study:
        spread = seed_study["seeds"]
        for variant, label in labels.items():
            cells = [_mean_sd(spread[variant][score]) for score in ("accuracy", *SCORES)]
            lines.append(f"| {label}, mean ± sd of {spread['gap']['seeds']} seeds | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    """python -m cifarcam.study.tables [FOLDER] [--seeds METRICS_JSON]: the README's headline table."""
    import argparse

    from cifarcam.core.names import model_labels
    from cifarcam.core.params import recipes

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("folder", nargs="?", type=Path, default=Path("."))
    parser.add_argument("--seeds", type=Path, help="the metrics.json of a run over several seeds")
    args = parser.parse_args(argv)
    metrics = json.loads((args.folder / "reports/metrics.json").read_text())
    seed_study = json.loads((args.folder / args.seeds).read_text()) if args.seeds else None
    print(headline(metrics, model_labels(recipes(args.folder / "params.yaml")), seed_study))


if __name__ == "__main__":
    main()
