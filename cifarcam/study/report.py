"""reports/README.md: the study's write-up, generated from one run's metrics and figures.

Each of the study's findings is restated, checked against the run's numbers by a stated rule, and
marked as holding or not, so that a rerun that overturns a finding says so.
"""

from cifarcam.study import tables
from cifarcam.study.tables import percent

ANIMALS = ("bird", "cat", "deer", "dog", "frog", "horse")  # the rest of CIFAR-10's classes are vehicles
SIGNIFICANCE = 0.05  # McNemar's p below which RGB's lead counts as more than chance
DIFFUSE_BELOW = 0.5  # a map is diffuse when its top 10% of pixels hold less than this share of its mass


def figures(labels):
    """(section title, [(relative path from reports/, alt text)]) of every figure the write-up embeds."""
    per_model = [
        ("Reliability diagrams (confidence against accuracy per bin; bin counts below)", "figures/{}_reliability.png"),
        (
            "Reliability after temperature scaling (the temperature fitted on validation)",
            "figures/{}_reliability_scaled.png",
        ),
        ("Confusion matrices, normalised per true class", "figures/{}_confusion.png"),
        ("The most confident mistakes, and what the model looked at", "cam/{}_mistakes_cam.png"),
        ("Cat and dog, right and wrong", "cam/{}_cam.png"),
        ("The worst mistakes between the most confused pairs", "cam/{}_confused_cam.png"),
        ("The mean map of each class over its right calls", "cam/{}_mean_cam.png"),
    ]
    sections = [("Accuracy per class, and what colour adds", [("figures/class_accuracy.png", "accuracy per class")])]
    sections += [
        (title, [(path.format(variant), label) for variant, label in labels.items()]) for title, path in per_model
    ]
    return sections


def _points(share):
    return f"{100 * share:+.2f}"


def _verdict(holds):
    return "**holds**" if holds else "**does not hold**"


def rgb_against_gray(metrics, labels):
    test = metrics["rgb_vs_gray"]
    difference, p = test["accuracy_difference"], test["mcnemar_p"]
    if difference > 0 and p < SIGNIFICANCE:
        verdict = f"{_verdict(True)}: the lead is larger than chance (p < {SIGNIFICANCE})"
    elif difference > 0:
        verdict = f"{_verdict(False)} beyond chance: RGB leads, but p ≥ {SIGNIFICANCE}"
    else:
        verdict = f"{_verdict(False)}: RGB is not ahead"
    return (
        f"**RGB is more accurate than gray.** {verdict}. {labels['rgb']} {percent(metrics['rgb']['accuracy'])} against "
        f"{labels['gray']} {percent(metrics['gray']['accuracy'])} on the same "
        f"{metrics['rgb']['test_images']:,} test images: "
        f"{_points(difference)} points (95% CI {_points(test['accuracy_difference_ci95_low'])} to "
        f"{_points(test['accuracy_difference_ci95_high'])}). {test['rgb_right_gray_wrong']} images were right "
        "only in RGB "
        f"and {test['gray_right_rgb_wrong']} only in gray; McNemar's exact p = {p:.3g}."
    )


def most_confused(evaluation, labels):
    parts, holds = [], []
    for variant, label in labels.items():
        first, *rest = evaluation[variant]["most_confused_pairs"]
        a, b = first["pair"]
        holds.append({a, b} == {"cat", "dog"})
        following = ", ".join(f"{p['pair'][0]}/{p['pair'][1]} {p['count']}" for p in rest[:2])
        parts.append(
            f"{label}: {a}/{b}, {first['count']} test images ({a} → {b} {first[f'{a}_as_{b}']}, "
            f"{b} → {a} {first[f'{b}_as_{a}']}); next {following}"
        )
    return (
        f"**Cat and dog are the most confused pair.** {_verdict(all(holds))} for {sum(holds)} of {len(holds)} models. "
        + "; ".join(parts)
        + "."
    )


def diffuse_maps(metrics, labels):
    parts, holds = [], []
    for variant, label in labels.items():
        cam = metrics[variant]["cam"]
        holds.append(cam["mass_in_top10pct"] < DIFFUSE_BELOW)
        parts.append(
            f"{label}: the top 10% of pixels hold {percent(cam['mass_in_top10pct'])} of the map's mass, and "
            f"{percent(cam['area_above_half'])} of pixels lie above half the peak ({cam['images']} test images)"
        )
    return (
        f"**The maps are diffuse.** {_verdict(all(holds))} for {sum(holds)} of {len(holds)} models (rule: "
        "diffuse while the "
        f"top 10% of pixels hold less than {100 * DIFFUSE_BELOW:.0f}% of the mass; a uniform map gives 10%, a "
        "single point 100%). " + "; ".join(parts) + "."
    )


def class_gains(evaluation):
    """RGB's accuracy minus gray's for each class, largest first."""
    gains = {
        name: evaluation["rgb"]["per_class"][name]["recall"] - evaluation["gray"]["per_class"][name]["recall"]
        for name in evaluation["rgb"]["per_class"]
    }
    return dict(sorted(gains.items(), key=lambda item: -item[1]))


def colour_for_animals(evaluation):
    gains = class_gains(evaluation)
    animals = [gain for name, gain in gains.items() if name in ANIMALS]
    vehicles = [gain for name, gain in gains.items() if name not in ANIMALS]
    animal_mean, vehicle_mean = sum(animals) / len(animals), sum(vehicles) / len(vehicles)
    listed = ", ".join(f"{name} {_points(gain)}" for name, gain in gains.items())
    return (
        f"**Colour helps especially for animals.** {_verdict(animal_mean > vehicle_mean)}: RGB's accuracy "
        "minus gray's is "
        f"{_points(animal_mean)} points on average over the {len(animals)} animal classes and "
        f"{_points(vehicle_mean)} over "
        f"the {len(vehicles)} vehicle classes. Per class, largest gain first: {listed}."
    )


def _score_interval(section, name):
    low, high = section[f"{name}_ci95_low"], section[f"{name}_ci95_high"]
    return f"{section[name]:.4f} ({low:.4f}–{high:.4f})"


def calibration_note(metrics, labels, label_smoothing):
    # label_smoothing: {variant: its recipe's label_smoothing}
    """Calibration before and after temperature scaling, and the two causes of under-confidence the recipe has."""
    parts = []
    for variant, label in labels.items():
        c, accuracy = metrics[variant]["calibration"], metrics[variant]["accuracy"]
        leaning = "under-confident" if c["mean_confidence"] < accuracy else "over-confident"
        after = c["scaled"]
        parts.append(
            f"{label}: ECE {_score_interval(c, 'ece')}, mean confidence {percent(c['mean_confidence'])} against "
            f"accuracy {percent(accuracy)} ({leaning}); at temperature {c['temperature']:.3f}, fitted on the "
            f"validation split, ECE {_score_interval(after, 'ece')}, NLL {_score_interval(c, 'nll')} → "
            f"{_score_interval(after, 'nll')}, Brier {_score_interval(c, 'brier')} → {_score_interval(after, 'brier')}"
        )
    smoothing = sorted(set(label_smoothing.values()))
    targets = " or ".join(percent(1 - value + value / 10) for value in smoothing)
    single = "; ".join(
        f"{label} {metrics[v]['calibration']['without_tta']['ece']:.4f} without TTA, "
        f"{metrics[v]['calibration']['ece']:.4f} with it"
        for v, label in labels.items()
    )
    return (
        "**How honest the probabilities are** (not one of the study's findings; 95% bootstrap intervals over the "
        "test images): " + "; ".join(parts) + f". Where the under-confidence comes from: label smoothing "
        f"{' or '.join(str(value) for value in smoothing)} trains every image towards {targets} on its class, "
        f"and the mean of the softmax over the TTA views flattens it further (ECE {single}). A temperature "
        "below 1 undoes both without changing a prediction."
    )


def write_up(metrics, evaluation, labels, label_smoothing):
    """The whole reports/README.md. `labels` maps each variant to its model's name, in the order shown."""
    lines = [
        "# Gray against RGB on CIFAR-10: this run's write-up",
        "",
        (
            "Generated by the pipeline's `report` stage from `metrics.json`, `evaluation.json` and the figures in this "
            "folder; `dvc repro` rewrites it, so edits by hand are lost."
        ),
        "",
        "## Results",
        "",
        *tables.results({label: metrics[variant] for variant, label in labels.items()}, calibration=True),
        "",
        (
            "Weighted averages over the ten classes with test-time augmentation; accuracy with its 95% Wilson score "
            "interval; the expected calibration error over equal-width confidence bins (ECE, "
            "`evaluate.calibration_bins`), "
            "the negative log-likelihood (NLL) and the Brier score summed over classes (0 to 2): lower is "
            "better for the "
            "last three."
        ),
        "",
        "## The study's findings, checked on this run",
        "",
        f"1. {most_confused(evaluation, labels)}",
        f"2. {rgb_against_gray(metrics, labels)}",
        f"3. {diffuse_maps(metrics, labels)}",
        f"4. {colour_for_animals(evaluation)}",
        "",
        calibration_note(metrics, labels, label_smoothing),
        "",
        "## Figures",
    ]
    for title, images in figures(labels):
        lines += ["", f"### {title}", ""]
        lines += [f"![{caption}]({path})" for path, caption in images]
    return "\n".join(lines) + "\n"
