"""reports/README.md: the study's write-up, generated from one run's metrics and figures.

Each of the study's findings is restated, checked against the run's numbers by a stated rule, and
marked as holding or not, so that a rerun that overturns a finding says so.
"""

from cifarcam.study import tables
from cifarcam.study.seeds import ANIMALS
from cifarcam.study.tables import percent

SIGNIFICANCE = 0.05  # the p below which a difference counts as more than chance


def figures(labels, seeds=1):
    """(section title, [(relative path from reports/, alt text)]) of every figure the write-up embeds; the
    per-model ones are the first seed's, and with several `seeds` the spread over them comes first."""
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
        ("Every method at every layer", "cam/{}_methods.png"),
    ]
    sections = [("Accuracy per class, and what colour adds", [("figures/class_accuracy.png", "accuracy per class")])]
    if seeds > 1:
        sections.insert(0, ("Every training seed", [("figures/seeds.png", "accuracy and gap per seed")]))
    sections += [
        (title, [(path.format(variant), label) for variant, label in labels.items()]) for title, path in per_model
    ]
    return sections


def _points(share):
    return f"{100 * share:+.2f}"


def _verdict(holds):
    return "**holds**" if holds else "**does not hold**"


def rgb_against_gray(metrics, labels):
    test, over = metrics["rgb_vs_gray"], metrics["seeds"]["gap"]
    difference, p = test["accuracy_difference"], test["mcnemar_p"]
    one_pair = (
        f"{labels['rgb']} {percent(metrics['rgb']['accuracy'])} against {labels['gray']} "
        f"{percent(metrics['gray']['accuracy'])} on the same {metrics['rgb']['test_images']:,} test images: "
        f"{_points(difference)} points (95% CI {_points(test['accuracy_difference_ci95_low'])} to "
        f"{_points(test['accuracy_difference_ci95_high'])}). {test['rgb_right_gray_wrong']} images were right only "
        f"in RGB and {test['gray_right_rgb_wrong']} only in gray; McNemar's exact p = {p:.3g}"
    )
    if over["seeds"] == 1:
        verdict = (
            f"{_verdict(difference > 0 and p < SIGNIFICANCE)} for this pair of networks"
            if difference > 0
            else f"{_verdict(False)}: RGB is not ahead"
        )
        return (
            f"**RGB is more accurate than gray.** {verdict}: {one_pair}. One training seed shows that these two "
            "trained networks differ, not how far the gap moves when training is repeated; for that, train more "
            "seeds: `dvc exp run -S 'seeds=[42,1,2]'`."
        )
    holds = over["mean"] > 0 and over["paired_t_p"] < SIGNIFICANCE
    return (
        f"**RGB is more accurate than gray.** {_verdict(holds)} over {over['seeds']} training seeds (rule: the mean "
        f"gap over seeds above 0 with the seed-paired t test's p < {SIGNIFICANCE}): {_points(over['mean'])} ± "
        f"{100 * over['sd']:.2f} points (sd; 95% t interval {_points(over['ci95_low'])} to "
        f"{_points(over['ci95_high'])}), paired t p = {over['paired_t_p']:.3g}, exact sign-flip p = "
        f"{over['sign_flip_p']:.3g} (the smallest it can give with {over['seeds']} seeds is "
        f"{over['smallest_possible_sign_flip_p']:.3g}). The first seed: {one_pair}."
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


def diffuse_maps(explanations, labels):
    """The study's "diffuse attention", retested per image against random maps of the same resolution."""
    choice = explanations["choice"]
    found = explanations["diffuseness"][choice["method"]][choice["layer"]]
    parts, holds = [], []
    for variant, label in labels.items():
        excess = found[variant]
        holds.append(excess["ci95_low"] <= 0)
        parts.append(
            f"{label} {_points(excess['mean'])} points ({_points(excess['ci95_low'])} to "
            f"{_points(excess['ci95_high'])}, p = {excess['p']:.2g})"
        )
    paired = found["rgb_minus_gray"]
    return (
        f"**The maps are diffuse.** {_verdict(all(holds))} for {choice['method']} at {choice['layer']} "
        f"({choice['resolution']}), the method chosen on validation (rule: diffuse while the share of the map's mass "
        "in its top 10% of pixels is not above that of random maps drawn at the same resolution, image by image; "
        "at a coarse layer even a single hot cell spreads over many pixels, so only a null of the same resolution "
        f"tells the models from the layer). Above the null: {'; '.join(parts)}; RGB − gray, paired per image: "
        f"{_points(paired['mean'])} ({_points(paired['ci95_low'])} to {_points(paired['ci95_high'])}), Holm p = "
        f"{paired['holm_p']:.2g}, over {explanations['gray']['images']} test images. Every method and layer: "
        "the table under Explanations."
    )


def colour_for_animals(metrics, evaluation):
    gains, contrast = evaluation["class_gains"], metrics["seeds"]["animals_minus_vehicles"]
    seeds = metrics["seeds"]["gap"]["seeds"]
    holds = contrast["contrast"] > 0 and contrast["p"] < SIGNIFICANCE
    helped = [name for name, gain in gains.items() if gain["holm_p"] < SIGNIFICANCE and gain["gain"] > 0]
    hurt = [name for name, gain in gains.items() if gain["holm_p"] < SIGNIFICANCE and gain["gain"] < 0]
    ranked = sorted(gains, key=lambda name: -gains[name]["gain"])
    listed = ", ".join(
        f"{name} {_points(gains[name]['gain'])} ({_points(gains[name]['ci95_low'])} to "
        f"{_points(gains[name]['ci95_high'])})"
        for name in ranked
    )
    return (
        f"**Colour helps especially for animals.** {_verdict(holds)} (rule, fixed in advance: the mean gain of the "
        f"{len([n for n in gains if n in ANIMALS])} animal classes minus that of the "
        f"{len([n for n in gains if n not in ANIMALS])} vehicle classes, each class weighted equally, above 0 with "
        f"p < {SIGNIFICANCE}): {_points(contrast['contrast'])} points (95% CI {_points(contrast['ci95_low'])} to "
        f"{_points(contrast['ci95_high'])}), p = {contrast['p']:.3g}, "
        f"{'over ' + str(seeds) + ' seeds' if seeds > 1 else 'one seed'}. The classes where colour helps beyond "
        f"chance after Holm's correction over the ten: {', '.join(helped) or 'none'}; where it hurts: "
        f"{', '.join(hurt) or 'none'}. RGB's accuracy minus "
        f"gray's per class, largest first (95% CI): {listed}."
    )


def explanation_tables(explanations, labels):
    """Markdown lines: per model, every method × layer and every null, with the four scores and the sanity check."""
    header = (
        "| method | layer | ROAD MoRF ↓ | ROAD LeRF ↑ | LeRF − MoRF ↑ | deletion ↓ | insertion ↑ | randomised ρ ↓ |"
    )
    lines = []
    for variant, label in labels.items():
        section = explanations[variant]
        lines += ["", f"**{label}** ({section['images']} test images; mean and 95% bootstrap interval)", ""]
        lines += [header, "|" + "---|" * 8]
        for group in ("scores", "nulls"):
            for method, by_layer in section[group].items():
                for layer, scores in by_layer.items():
                    name = method if group == "scores" else f"null: {method}"
                    sanity = section["sanity"].get(method, {})
                    rho = f"{sanity['mean_spearman']:.2f}" if sanity.get("layer") == layer else ""
                    cells = [_score(scores[key]) for key in ("road_morf", "road_lerf", "road_combined")]
                    cells += [_score(scores[key]) for key in ("deletion", "insertion")]
                    lines.append(f"| {name} | {layer} {section['resolution'][layer]} | {' | '.join(cells)} | {rho} |")
    return lines


def _score(summary):
    return f"{summary['mean']:.3f} ({summary['ci95_low']:.3f}–{summary['ci95_high']:.3f})"


def explanation_notes(explanations, labels):
    """The chosen method against its nulls, and what colour changes in attention: two paragraphs."""
    choice = explanations["choice"]
    parts = []
    for variant, label in labels.items():
        against = explanations[variant]["chosen_minus_nulls"]
        parts.append(
            f"{label}: "
            + ", ".join(
                f"{null} {d['mean']:+.3f} ({d['ci95_low']:+.3f} to {d['ci95_high']:+.3f}, Holm p {d['holm_p']:.2g})"
                for null, d in against.items()
            )
        )
    beats = all(d["ci95_low"] > 0 for v in labels for d in explanations[v]["chosen_minus_nulls"].values())
    chosen = (
        f"**Chosen on validation: {choice['method']} at {choice['layer']} ({choice['resolution']})**, by "
        f"{choice['rule']} ({', '.join(f'{v} {s:.3f}' for v, s in choice['validation_road_combined'].items())}). "
        f"On the test images it {'beats' if beats else 'does not beat'} every null at its resolution: its ROAD "
        f"LeRF − MoRF minus the null's, per image: {'; '.join(parts)}."
    )
    colour = explanations["colour_attention"]
    one = colour["one_right_minus_same_call"] if "one_right_minus_same_call" in colour else None
    attention = (
        f"**What colour changes in attention** ({colour['method']} at {colour['layer']}; Spearman's rank correlation "
        f"between the gray and the RGB map of the same image): {_mean_ci(colour['sample'])} over "
        f"{colour['sample']['images']} test images, against {_mean_ci(colour['null_other_image'])} for maps of "
        f"different images (the null: a shared spatial habit); above it by {_mean_ci(colour['sample_above_null'])}, "
        f"p = {colour['sample_above_null']['p']:.2g}. Where only RGB is right: {_mean_ci(colour['only_rgb_right'])} "
        f"({colour['only_rgb_right']['images']} images); only gray: {_mean_ci(colour['only_gray_right'])} "
        f"({colour['only_gray_right']['images']})"
        + (
            f"; images with one right call minus those with the same call: {one['difference']:+.3f}, "
            f"Mann-Whitney p = {one['p']:.2g}."
            if one
            else "."
        )
    )
    return [chosen, "", attention]


def _mean_ci(summary):
    if "mean" not in summary:
        return "too few"
    return f"{summary['mean']:.2f} ({summary['ci95_low']:.2f} to {summary['ci95_high']:.2f})"


def seeds_table(metrics, labels):
    """Markdown lines: each seed's accuracies, gap and McNemar p, then the mean ± sd over seeds."""
    section = metrics["seeds"]
    header = ["seed", *(f"{labels[v]} accuracy" for v in ("gray", "rgb")), "RGB − gray (95% CI)", "McNemar p"]
    header += [f"{labels[v]} temperature" for v in ("gray", "rgb")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for seed, run in section["per_seed"].items():
        test = run["rgb_vs_gray"]
        lines.append(
            f"| {seed} | {percent(run['gray']['accuracy'])} | {percent(run['rgb']['accuracy'])} | "
            f"{_points(test['accuracy_difference'])} ({_points(test['accuracy_difference_ci95_low'])} to "
            f"{_points(test['accuracy_difference_ci95_high'])}) | {test['mcnemar_p']:.3g} | "
            f"{run['gray']['temperature']:.3f} | {run['rgb']['temperature']:.3f} |"
        )
    if section["gap"]["seeds"] > 1:
        accuracy = {v: section[v]["accuracy"] for v in ("gray", "rgb")}
        lines.append(
            f"| mean ± sd | {percent(accuracy['gray']['mean'])} ± {100 * accuracy['gray']['sd']:.2f} | "
            f"{percent(accuracy['rgb']['mean'])} ± {100 * accuracy['rgb']['sd']:.2f} | "
            f"{_points(section['gap']['mean'])} ± {100 * section['gap']['sd']:.2f} | | "
            f"{section['gray']['temperature']['mean']:.3f} | {section['rgb']['temperature']['mean']:.3f} |"
        )
    return lines


def class_gains_table(evaluation):
    """Markdown lines: per class, RGB − gray over seeds with its interval, p and Holm's p."""
    lines = ["| class | RGB − gray (points) | 95% CI | p | Holm p |", "|---|---|---|---|---|"]
    for name, gain in evaluation["class_gains"].items():
        lines.append(
            f"| {name} | {_points(gain['gain'])} | {_points(gain['ci95_low'])} to {_points(gain['ci95_high'])} | "
            f"{gain['p']:.2g} | {gain['holm_p']:.2g} |"
        )
    return lines


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


def write_up(metrics, evaluation, explanations, labels, label_smoothing):
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
        f"3. {diffuse_maps(explanations, labels)}",
        f"4. {colour_for_animals(metrics, evaluation)}",
        "",
        "## Over training seeds",
        "",
        *seeds_table(metrics, labels),
        "",
        "## What colour adds per class",
        "",
        *class_gains_table(evaluation),
        "",
        (
            "Averaged over the seeds; intervals and p from each test image's seed-averaged difference (a paired t "
            "test over the class's test images), Holm-corrected over the ten classes."
        ),
        "",
        calibration_note(metrics, labels, label_smoothing),
        "",
        "## Explanations: which method, and does it beat a null",
        "",
        *explanation_notes(explanations, labels),
        *explanation_tables(explanations, labels),
        "",
        (
            "ROAD (Rong et al. 2022): the class probability as pixels are removed, most relevant first (MoRF: a "
            "faithful map makes it fall) or least relevant first (LeRF: it should stay), removed pixels filled by "
            "noisy linear imputation; deletion and insertion (Petsiuk et al. 2018): removed to black, or restored "
            "onto a blurred copy, most relevant first. Each is the area under the curve. The nulls are random maps, "
            "a centre prior and the image's edges, each drawn at that row's resolution. Randomised ρ: the mean rank "
            "correlation between the trained model's maps and those after randomising its layers from the top down "
            "(Adebayo et al. 2018; near 0: the map depends on what the model learned)."
        ),
        "",
        "## Figures",
    ]
    for title, images in figures(labels, metrics["seeds"]["gap"]["seeds"]):
        lines += ["", f"### {title}", ""]
        lines += [f"![{caption}]({path})" for path, caption in images]
    return "\n".join(lines) + "\n"
