"""Every method at every layer, and null maps of the same resolutions, scored for faithfulness on the same images.

A candidate is a (method, layer) pair: the CAM methods at each of gradcam.layers, the pixel
methods at "pixels". The nulls (random maps, a centre prior, edges) are drawn at each of those
resolutions, so that a method is compared with what any map that coarse would score.
"""

import time

import numpy as np

from cifarcam.explain import faithfulness, geometry, methods, nulls

PIXELS = "pixels"


def candidates(method, layer, layers):
    """The (method, layer) pairs to consider: every one for `auto`, else the named method's (at the named layer)."""
    pairs = [(name, at) for name in methods.CAM_METHODS for at in layers] + [(n, PIXELS) for n in methods.PIXEL_METHODS]
    return [(name, at) for name, at in pairs if method in ("auto", name) and (layer == "auto" or at in (layer, PIXELS))]


def target(model, layer):
    """The Keras layer a candidate's maps look at (None at the pixels)."""
    return None if layer == PIXELS else geometry.block(model, layer)


def resolution(model, layer):
    """'15x15', or '32x32' at the pixels."""
    return geometry.resolution(target(model, layer) or model.layers[0])


def maps_of(model, images, classes, pairs, seed=0):
    """({(method, layer): maps}, {method: seconds}): each candidate's maps, and the time each method took."""
    maps, seconds = {}, {}
    for method, layer in pairs:
        start = time.perf_counter()
        maps[method, layer] = methods.attribution_maps(model, images, classes, method, target(model, layer), seed=seed)
        seconds[method] = seconds.get(method, 0.0) + time.perf_counter() - start
    return maps, seconds


def null_maps_of(model, images, layers, seed=0):
    """{(null, layer): maps} for each layer in `layers` (PIXELS included): random, centre and edge maps there."""
    found = {}
    for layer in layers:
        at = target(model, layer)
        centres = None if at is None else geometry.cell_centres(model, at)
        for name, maps in nulls.null_maps(images, centres, seed=seed).items():
            found[name, layer] = maps
    return found


def scored(model, images, classes, maps, steps, seed=0):
    """{candidate: {score: (N,) per image}} for every entry of `maps`, on the same images and removal orders."""
    return faithfulness.per_image_many(model, images, maps, classes, steps=steps, seed=seed)


def summary(per_image, seed=0):
    """{score: {mean, ci95_low, ci95_high}} of one candidate, and its ROAD combined score."""
    section = {score: faithfulness.bootstrap(values, seed=seed) for score, values in per_image.items()}
    return section | {"road_combined": faithfulness.bootstrap(faithfulness.road_combined(per_image), seed=seed)}


def choose(validation):
    """The candidate with the highest ROAD combined score (LeRF − MoRF), averaged over the models.

    validation: {variant: {candidate: per-image scores}} on validation images. Returns the candidate
    and {candidate: {variant: mean score}}.
    """
    means = {
        candidate: {
            variant: float(faithfulness.road_combined(scores[candidate]).mean())
            for variant, scores in validation.items()
        }
        for candidate in next(iter(validation.values()))
    }
    best = max(means, key=lambda candidate: np.mean(list(means[candidate].values())))
    return best, means
