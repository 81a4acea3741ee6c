"""How faithful a map is to the model: does removing what it points at change the prediction?

Four removal scores per image, each summarised over images by a bootstrap interval:
ROAD (Rong et al. 2022, "A Consistent and Efficient Evaluation Strategy for Attribution Methods")
removes a share of the pixels, most relevant first (MoRF) or least relevant first (LeRF), and
fills them by noisy linear imputation, so that the filled image does not tell the model where the
removed pixels were; deletion and insertion (Petsiuk et al. 2018, RISE) remove pixels to black or
add the original pixels onto a blurred copy, most relevant first. The imputation follows
pytorch-grad-cam's `NoisyLinearImputer` (pytorch_grad_cam/metrics/road.py, after Leemann's
road_evaluation): each removed pixel is the weighted mean of its in-image 8 neighbours (1/6 for the
four direct ones, 1/12 for the diagonals, normalised by the weights inside the image), solved
exactly as one sparse system, plus Gaussian noise of standard deviation 0.01 on the removed pixels.

The removal shares are k/steps. ROAD scores the mean probability of the explained class over
k = 1 ... steps-1 (steps=10 gives ROAD's percentiles 10, 20, ..., 90; pytorch-grad-cam subtracts
the unperturbed probability, Quantus counts correct predictions instead); deletion and insertion
the trapezoid area under the probability over k = 0 ... steps, from the image to black and from
the blurred copy (sigma BLUR_SIGMA px) to the image. Pixels of equal relevance (the plateaus of a
coarse map placed at input resolution, or a constant map) are ordered at random, seeded, never by
their index, which would remove the top of the image first. bench/quantus_crosscheck.py checks
the imputation, ROAD and deletion against Quantus 0.6.
"""

import numpy as np
import scipy.sparse
from scipy.ndimage import gaussian_filter
from scipy.sparse.linalg import splu

SCORES = ("road_morf", "road_lerf", "deletion", "insertion")
LOWER_IS_BETTER = {"road_morf": True, "road_lerf": False, "deletion": True, "insertion": False}
NOISE = 0.01  # pytorch-grad-cam's NoisyLinearImputer, on images in [0, 1] here
BLUR_SIGMA = 2.0  # px, insertion's start: removes a 32 px image's detail, keeps its colours (RISE: 5 px at 224 px)
# (dy, dx, weight): pytorch-grad-cam's neighbors_weights
NEIGHBOURS = (
    (-1, -1, 1 / 12),
    (-1, 0, 1 / 6),
    (-1, 1, 1 / 12),
    (0, -1, 1 / 6),
    (0, 1, 1 / 6),
    (1, -1, 1 / 12),
    (1, 0, 1 / 6),
    (1, 1, 1 / 12),
)
IMPUTE_BLOCK = 128  # images per sparse system: its factor takes up to about 0.6 MB an image (90% removed)
VARIANTS_PER_CALL = 4096  # perturbed images per model.predict call


def per_image(model, images, maps, classes, steps=10, seed=0, batch_size=500):
    """{score: (N,) per-image value} for one set of maps; see SCORES and LOWER_IS_BETTER."""
    return per_image_many(model, images, {"maps": maps}, classes, steps, seed, batch_size)["maps"]


def per_image_many(model, images, maps, classes, steps=10, seed=0, batch_size=500):
    """{name: {score: (N,)}} for several sets of maps {name: (N, H, W)} of the same images.

    Every set is scored with the same seed, so the sets share their random tie-breaks and
    imputation noise, and a set gets the same scores alone (per_image) as among others.
    """
    if steps < 2:
        raise ValueError(f"steps must be at least 2 for ROAD to have a point between none and all pixels, not {steps}")
    images, classes = np.asarray(images, np.float32), np.asarray(classes)
    blurred = gaussian_filter(images, (0, BLUR_SIGMA, BLUR_SIGMA, 0))
    rows = np.arange(len(images))
    original, blank, start = _probabilities(model, [images, np.zeros_like(images[:1]), blurred], batch_size)
    original, blank, start = original[rows, classes], blank[0, classes], start[rows, classes]
    chunk = max(1, VARIANTS_PER_CALL // (4 * (steps - 1)))
    scores = {}
    for name, values in maps.items():
        rng = np.random.default_rng(seed)
        ranks = relevance_ranks(values, rng)
        curves = np.concatenate(
            [
                _curves(model, *(x[i : i + chunk] for x in (images, blurred, ranks, classes)), steps, rng, batch_size)
                for i in range(0, len(images), chunk)
            ],
            axis=2,
        )  # (4, steps-1, N): ROAD MoRF, ROAD LeRF, deletion, insertion after removing k/steps, 0 < k < steps
        deletion = np.concatenate([original[None], curves[2], blank[None]])
        insertion = np.concatenate([start[None], curves[3], original[None]])
        scores[name] = {
            "road_morf": curves[0].mean(axis=0),
            "road_lerf": curves[1].mean(axis=0),
            "deletion": np.trapezoid(deletion, dx=1 / steps, axis=0),
            "insertion": np.trapezoid(insertion, dx=1 / steps, axis=0),
        }
    return scores


def relevance_ranks(maps, rng):
    """(N, H, W) int: 0 for each map's most relevant pixel, up to H*W-1; equal values in random order."""
    flat = np.asarray(maps).reshape(len(maps), -1)
    order = np.lexsort((rng.random(flat.shape), -flat), axis=-1)
    return np.argsort(order, axis=1).reshape(np.shape(maps))


def _curves(model, images, blurred, ranks, classes, steps, rng, batch_size):
    """Class probabilities (4, steps-1, n) after removing k/steps, 0 < k < steps, from one predict call.

    The rows are ROAD MoRF, ROAD LeRF, deletion (to black) and insertion (of the original onto the blurred copy).
    """
    pixels = ranks[0].size
    counts = np.array([round(k / steps * pixels) for k in range(1, steps)])[:, None, None, None]
    most, least = ranks < counts, ranks >= pixels - counts  # (steps-1, n, H, W): the pixels each share removes
    shape = most.shape + images.shape[-1:]
    road = impute(
        np.broadcast_to(images, (2, *shape)).reshape(-1, *images.shape[1:]),
        np.stack([most, least]).reshape(-1, *ranks.shape[1:]),
        rng,
    )
    deleted = np.where(most[..., None], 0.0, images)
    inserted = np.where(most[..., None], images, blurred)
    variants = np.concatenate([road.reshape(2, *shape), deleted[None], inserted[None]])
    (probabilities,) = _probabilities(model, [variants.reshape(-1, *images.shape[1:])], batch_size)
    return probabilities.reshape(4, steps - 1, len(images), -1)[..., np.arange(len(images)), classes]


def _probabilities(model, batches, batch_size):
    """The model's outputs for a list of image arrays, in one predict call."""
    outputs = model.predict(np.concatenate(batches), batch_size=batch_size, verbose=0)
    return np.split(np.asarray(outputs, np.float32), np.cumsum([len(batch) for batch in batches])[:-1])


def impute(images, removed, seed=0, noise=NOISE):
    """ROAD's noisy linear imputation: (N, H, W, C) images with the `removed` (N, H, W) pixels filled.

    seed: an int or a numpy Generator (which it advances). Kept pixels are returned unchanged.
    """
    images, removed = np.asarray(images, np.float32), np.asarray(removed, bool)
    if np.any(removed.all(axis=(1, 2))):
        raise ValueError("cannot impute an image with every pixel removed: nothing is left to interpolate from")
    rng = np.random.default_rng(seed)
    filled = images.copy()
    for start in range(0, len(images), IMPUTE_BLOCK):
        block = slice(start, start + IMPUTE_BLOCK)
        where = np.nonzero(removed[block])
        values = _solve(images[block], removed[block], where)
        filled[block][where] = values + rng.normal(0.0, noise, values.shape)
    return filled


def _solve(images, removed, where):
    """The removed pixels' values (K, C): each the weighted mean of its neighbours, one sparse system for the block.

    Row i of the system: (sum of the weights inside the image) x_i - sum over removed neighbours j of w_ij x_j
    = sum over kept neighbours of w_ij times their value. It is symmetric and diagonally dominant, and
    nonsingular while every image keeps a pixel.
    """
    _, height, width, channels = images.shape
    image, ys, xs = where
    count = len(image)
    index = np.full(removed.shape, -1)
    index[where] = np.arange(count)
    diagonal, right = np.zeros(count), np.zeros((count, channels))
    rows, columns, weights = [np.arange(count)], [np.arange(count)], []
    for dy, dx, weight in NEIGHBOURS:
        y, x = ys + dy, xs + dx
        inside = np.nonzero((y >= 0) & (y < height) & (x >= 0) & (x < width))[0]
        diagonal[inside] += weight
        neighbour = (image[inside], y[inside], x[inside])
        gone = removed[neighbour]
        rows.append(inside[gone])
        columns.append(index[neighbour][gone])
        weights.append(np.full(gone.sum(), -weight))
        right[inside[~gone]] += weight * images[neighbour][~gone]
    system = scipy.sparse.csc_matrix(
        (np.concatenate([diagonal, *weights]), (np.concatenate(rows), np.concatenate(columns))), shape=(count, count)
    )
    return splu(system, permc_spec="NATURAL").solve(right)  # row-major order keeps the factor banded (width + 1)


def road_combined(scores):
    """Per image LeRF - MoRF of ROAD: higher is more faithful (pytorch-grad-cam's ROADCombined halves it)."""
    return scores["road_lerf"] - scores["road_morf"]


def bootstrap(values, resamples=1000, seed=0, confidence=0.95):
    """{"mean", "ci95_low", "ci95_high"}: the mean over images and its percentile bootstrap interval.

    The interval's keys name its confidence: ci90_low and ci90_high for confidence=0.9.
    """
    values = np.asarray(values, np.float64)
    means = values[np.random.default_rng(seed).integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    tail = 50 * (1 - confidence)
    low, high = np.percentile(means, [tail, 100 - tail])
    label = f"ci{round(100 * confidence)}"
    return {"mean": float(values.mean()), f"{label}_low": float(low), f"{label}_high": float(high)}


def concentration(maps):
    """(N,): the share of each map's mass in its top 10% of pixels (0.1 = uniform, 0 for an all-zero map)."""
    flat = np.sort(np.asarray(maps, np.float64).reshape(len(maps), -1), axis=1)[:, ::-1]
    totals = flat.sum(axis=1)
    top = flat[:, : max(1, round(0.1 * flat.shape[1]))].sum(axis=1)
    return np.divide(top, totals, out=np.zeros_like(totals), where=totals > 0)
