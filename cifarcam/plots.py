"""Figures for the reports: rows of Grad-CAM overlays, and mean maps per class."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def cam_grid(rows, path, title):
    """One figure of labelled rows; each row is (label, [(image_uint8, caption), ...])."""
    columns = max((len(cells) for _, cells in rows), default=1) or 1
    figure, axes = plt.subplots(len(rows), columns, figsize=(0.4 + 1.9 * columns, 2.2 * len(rows)), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for row_axes, (label, cells) in zip(axes, rows):
        first = row_axes[0]
        first.text(-0.06, 0.5, label, transform=first.transAxes, rotation=90, ha="right", va="center", fontsize=9, fontweight="bold")
        if not cells:
            first.text(0.5, 0.5, "none in the test set", transform=first.transAxes, ha="center", va="center", fontsize=8)
        for axis, (image, caption) in zip(row_axes, cells):
            axis.imshow(image, interpolation="bilinear")
            axis.text(0.5, -0.04, caption, transform=axis.transAxes, ha="center", va="top", fontsize=7)
    _save(figure, path, title)


def mean_maps(maps_by_class, path, title):
    """One heatmap per class, on a shared [0, 1] colour scale."""
    columns = 5
    rows = -(-len(maps_by_class) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.3 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, (name, (heatmap, count)) in zip(axes.flat, maps_by_class.items()):
        axis.imshow(heatmap, cmap="jet", vmin=0, vmax=1, interpolation="bilinear")
        axis.set_title(f"{name} (n={count})", fontsize=9)
    _save(figure, path, title)


def _save(figure, path, title):
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)
