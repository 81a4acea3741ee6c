"""How faithful and how concentrated the maps are, as numbers that `dvc metrics diff` can compare.

Faithfulness follows the removal tests of Samek et al. (2017) and ROAD (Rong et al. 2022): pixels
are replaced by the image's mean colour, most relevant first (MoRF) or least relevant first
(LeRF), and the probability of the explained class is recorded after each tenth. A faithful map
makes the MoRF curve fall fast and the LeRF curve stay high; a random order is the reference.
Concentration turns the study's "diffuse attention" into figures.
"""

import numpy as np


def removal_curves(model, images, maps, classes, steps=10, seed=0):
    """Mean probability of `classes` after removing 0, 1/steps, ..., all pixels, for each order."""
    n, height, width = maps.shape
    flat = maps.reshape(n, -1)
    orders = {
        "morf": np.argsort(-flat, axis=1, kind="stable"),
        "lerf": np.argsort(flat, axis=1, kind="stable"),
        "random": np.random.default_rng(seed).permuted(np.tile(np.arange(height * width), (n, 1)), axis=1),
    }
    fill = images.mean(axis=(1, 2), keepdims=True)
    rows = np.arange(n)[:, None]
    curves = {}
    for name, order in orders.items():
        rank = np.empty_like(order)
        rank[rows, order] = np.arange(height * width)
        points = []
        for step in range(steps + 1):
            removed = (rank < round(step / steps * height * width)).reshape(n, height, width, 1)
            probabilities = model.predict(np.where(removed, fill, images), batch_size=500, verbose=0)
            points.append(float(probabilities[np.arange(n), classes].mean()))
        curves[name] = points
    return curves


def area_under(curve):
    """Trapezoidal area under a curve sampled evenly on [0, 1]."""
    return float(np.trapezoid(curve, dx=1 / (len(curve) - 1)))


def concentration(maps):
    """Share of the map's mass in its top 10% of pixels (0.1 = uniform) and share of pixels above half the peak."""
    flat = np.sort(maps.reshape(len(maps), -1), axis=1)[:, ::-1]
    top = max(1, round(0.1 * flat.shape[1]))
    totals = flat.sum(axis=1)
    mass = np.divide(flat[:, :top].sum(axis=1), totals, out=np.zeros_like(totals), where=totals > 0)
    return {"mass_in_top10pct": float(mass.mean()), "area_above_half": float((flat >= 0.5).mean())}


def summary(model, images, maps, classes, steps=10, seed=0):
    """The `cam` section of reports/metrics.json for one model."""
    curves = removal_curves(model, images, maps, classes, steps, seed)
    areas = {f"{name}_auc": area_under(points) for name, points in curves.items()}
    return areas | {"faithfulness": areas["lerf_auc"] - areas["morf_auc"]} | concentration(maps)
