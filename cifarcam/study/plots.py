"""Figures for the reports: attribution overlays, every method at every layer, mean maps, per-class accuracy,
reliability diagrams, confusions.

PNGs are sized for reading on a screen and kept small in git: 32-pixel images are drawn with
nearest-neighbour pixels, which compress several times better than interpolated ones.
"""

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def cam_grid(rows, path, title):
    """One figure of labelled rows; each row is (label, [(image_uint8, caption), ...])."""
    columns = max((len(cells) for _, cells in rows), default=1) or 1
    figure, axes = plt.subplots(len(rows), columns, figsize=(0.4 + 1.9 * columns, 2.2 * len(rows)), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for row_axes, (label, cells) in zip(axes, rows, strict=True):
        first = row_axes[0]
        first.text(
            -0.06,
            0.5,
            label,
            transform=first.transAxes,
            rotation=90,
            ha="right",
            va="center",
            fontsize=9,
            fontweight="bold",
        )
        if not cells:
            first.text(
                0.5, 0.5, "none in the test set", transform=first.transAxes, ha="center", va="center", fontsize=8
            )
        for axis, (image, caption) in zip(row_axes, cells, strict=False):  # a row may be shorter than the widest
            axis.imshow(image, interpolation="nearest")
            axis.text(0.5, -0.04, caption, transform=axis.transAxes, ha="center", va="top", fontsize=7)
    _save(figure, path, title)


def method_grid(pictures, overlays, columns, path, title):
    """Every method at every layer on a few images: a row per method, per image its picture then a column per layer.

    pictures: [(image_uint8, caption)], one per image; overlays: {method: {column: [overlay_uint8 per image]}}, where
    a method without a column (a pixel method at a block, a CAM method at the pixels) leaves that cell blank.
    """
    width = 1 + len(columns)
    figure, axes = plt.subplots(
        len(overlays), width * len(pictures), figsize=(1.3 * width * len(pictures), 1.45 * len(overlays)), squeeze=False
    )
    for axis in axes.flat:
        axis.axis("off")
    for row, (method, by_column) in enumerate(overlays.items()):
        axes[row, 0].text(-0.1, 0.5, method, transform=axes[row, 0].transAxes, ha="right", va="center", fontsize=8)
        for index, (picture, caption) in enumerate(pictures):
            axes[row, index * width].imshow(picture, interpolation="nearest")
            if row == 0:
                axes[row, index * width].set_title(caption, fontsize=7)
            for offset, column in enumerate(columns, 1):
                axis = axes[row, index * width + offset]
                if row == 0:
                    axis.set_title(column, fontsize=7)
                if column in by_column:
                    axis.imshow(by_column[column][index], interpolation="nearest")
    _save(figure, path, title)


def mean_maps(maps_by_class, path, title):
    """One heatmap per class, on a shared [0, 1] colour scale."""
    columns = 5
    rows = -(-len(maps_by_class) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.3 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, (name, (heatmap, count)) in zip(axes.flat, maps_by_class.items(), strict=False):  # cells may stay empty
        axis.imshow(heatmap, cmap="jet", vmin=0, vmax=1, interpolation="bilinear")
        axis.set_title(f"{name} (n={count})", fontsize=9)
    _save(figure, path, title)


def class_accuracy(accuracies, classes, path, title, gain_intervals):
    """Grouped bars of each model's accuracy per class on an axis from 0, and below them each class's difference
    (second minus first) with its 95% interval, `gain_intervals` [(low, high)] as shares."""
    (first, a), (second, b) = accuracies.items()
    a, b, x = 100 * np.asarray(a), 100 * np.asarray(b), np.arange(len(classes))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    top.bar(x - 0.2, a, 0.4, label=first, color="0.55")
    top.bar(x + 0.2, b, 0.4, label=second, color="tab:blue")
    top.set_ylabel("accuracy (%)")
    top.set_ylim(0, 100)
    top.legend(loc="lower right", fontsize=8)
    gain = b - a
    low, high = (100 * np.asarray(gain_intervals)).T
    bars = bottom.bar(x, gain, 0.6, color=np.where(gain >= 0, "tab:green", "tab:red"))
    bottom.errorbar(x, gain, yerr=[gain - low, high - gain], fmt="none", ecolor="black", elinewidth=0.8, capsize=3)
    bottom.bar_label(bars, fmt="%+.1f", fontsize=7, padding=1)
    bottom.axhline(0, color="black", linewidth=0.8)
    bottom.set_ylabel(f"{second} − {first}\n(points, 95% CI)")
    bottom.margins(y=0.25)
    bottom.set_xticks(x, classes, rotation=30, ha="right")
    _save(figure, path, title)


_GAP_KEYS = ("accuracy_difference", "accuracy_difference_ci95_low", "accuracy_difference_ci95_high")


def seeds(per_seed, labels, path, title):
    """Each variant's test accuracy per training seed (left) and the gap per seed with its 95% interval (right)."""
    seeds = list(per_seed)
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    for offset, (variant, label) in zip((-0.12, 0.12), labels.items(), strict=True):
        left.plot(
            np.arange(len(seeds)) + offset,
            [100 * per_seed[seed][variant]["accuracy"] for seed in seeds],
            "o",
            label=label,
            color="0.45" if offset < 0 else "tab:blue",
        )
    left.set_xticks(range(len(seeds)), seeds)
    left.set_xlabel("training seed")
    left.set_ylabel("accuracy (%)")
    left.margins(y=0.3)
    left.legend(fontsize=8)
    _mark_broken_axis(left)
    gaps = np.array([[per_seed[seed]["rgb_vs_gray"][key] for key in _GAP_KEYS] for seed in seeds]) * 100
    right.errorbar(
        range(len(seeds)), gaps[:, 0], yerr=[gaps[:, 0] - gaps[:, 1], gaps[:, 2] - gaps[:, 0]], fmt="o", capsize=3
    )
    right.axhline(0, color="black", linewidth=0.8)
    right.axhline(gaps[:, 0].mean(), color="tab:green", linestyle="--", linewidth=1, label="mean over seeds")
    right.set_xticks(range(len(seeds)), seeds)
    right.set_xlabel("training seed")
    right.set_ylabel("RGB − gray (points, 95% CI)")
    right.set_ylim(min(0, gaps[:, 1].min()) - 0.5, gaps[:, 2].max() + 0.5)
    right.legend(fontsize=8)
    _save(figure, path, title)


def _mark_broken_axis(axis):
    """Two slashes across the foot of the y axis and its starting value: a zoomed axis that does not start at 0."""
    for offset in (0.0, 0.025):
        axis.plot([-0.02, 0.02], [offset, offset + 0.03], transform=axis.transAxes, color="black", clip_on=False)
    axis.text(
        0.03,
        0.01,
        f"axis broken: starts at {axis.get_ylim()[0]:.2f}, not 0",
        transform=axis.transAxes,
        fontsize=7,
        va="bottom",
    )


def reliability(points, path, title):
    """Accuracy against mean confidence per confidence bin, with each bin's image count under it."""
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    centres = [(p["low"] + p["high"]) / 2 for p in points]
    widths = [p["high"] - p["low"] for p in points]
    top.bar(centres, [p["accuracy"] for p in points], widths, edgecolor="black", linewidth=0.5, label="accuracy")
    top.plot(
        [p["confidence"] for p in points],
        [p["accuracy"] for p in points],
        "o",
        color="tab:orange",
        markersize=3,
        label="at the bin's mean confidence",
    )
    top.plot([0, 1], [0, 1], "--", color="0.4", linewidth=1, label="calibrated")
    top.set_ylabel("accuracy")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(centres, [p["count"] for p in points], widths, color="0.6", edgecolor="black", linewidth=0.5)
    bottom.set_yscale("log")
    bottom.set_ylabel("images")
    bottom.set_xlabel("confidence of the predicted class")
    _save(figure, path, title)


def confusion(matrix, classes, path, title):
    """A confusion matrix normalised per true class (rows sum to 1), the shares printed. The colours scale the
    confusions alone, up to the largest: the diagonal (the right calls, near 1) is masked, or they would be white."""
    matrix = np.asarray(matrix)
    confusions = np.ma.masked_where(np.eye(len(matrix), dtype=bool), matrix)
    largest = max(float(confusions.max() or 0), 1e-9)
    figure, axis = plt.subplots(figsize=(6.2, 5.4))
    axis.set_facecolor("0.85")  # the masked diagonal
    image = axis.imshow(confusions, cmap="Reds", vmin=0, vmax=largest)
    for (row, column), share in np.ndenumerate(matrix):
        dark = row != column and share > largest / 2
        axis.text(column, row, f"{share:.2f}", ha="center", va="center", fontsize=7, color="white" if dark else "black")
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(classes)), classes, fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("actual")
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of the actual class (off the diagonal)")
    _save(figure, path, title)


def _save(figure, path, title):
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)
