"""What the maps say about the models, as tested statements: how concentrated they are against a null of
the same resolution, and how much colour moves where a model looks.

Both work per image and pair the two models on the same images, so an image-level difference (an
easy image, a centred object) cancels. Intervals are percentile bootstraps over images; p values
are Wilcoxon's signed-rank test, two-sided.
"""

import numpy as np
from scipy import stats

from cifarcam.explain.faithfulness import bootstrap, concentration


def over_null(maps, null_draws):
    """Per image: the share of mass in the top 10% of pixels, minus its mean over the null's draws of that image.

    null_draws: (draws, N, H, W) maps of the null (e.g. random maps at the same resolution).
    """
    return concentration(maps) - np.mean([concentration(draw) for draw in null_draws], axis=0)


def diffuseness(excess, seed=0):
    """{variant: the mean excess concentration, its interval and p}, plus `rgb_minus_gray`, paired per image.

    excess: {variant: (N,) over_null values on the same images}. A model's maps are diffuse at this
    resolution when their excess is not above 0: no more concentrated than random maps drawn there.
    """
    section = {
        variant: bootstrap(values, seed=seed) | {"p": signed_rank_p(values)} for variant, values in excess.items()
    }
    difference = excess["rgb"] - excess["gray"]
    return section | {"rgb_minus_gray": bootstrap(difference, seed=seed) | {"p": signed_rank_p(difference)}}


def rank_agreement(maps_a, maps_b):
    """(N,) Spearman's rank correlation between two maps of each image (0 where either map is constant)."""
    flat_a, flat_b = (np.asarray(maps).reshape(len(maps), -1) for maps in (maps_a, maps_b))
    ranks_a, ranks_b = (stats.rankdata(flat, axis=1) for flat in (flat_a, flat_b))
    ranks_a, ranks_b = ranks_a - ranks_a.mean(axis=1, keepdims=True), ranks_b - ranks_b.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(ranks_a, axis=1) * np.linalg.norm(ranks_b, axis=1)
    products = (ranks_a * ranks_b).sum(axis=1)
    return np.divide(products, norms, out=np.zeros_like(products), where=norms > 0)


def colour_and_attention(gray_maps, rgb_maps, gray_right, rgb_right, sampled, seed=0):
    """How alike the gray and RGB maps of each image are: on a sample of the test set, and where only one model
    is right (every such image, the sample's few being too few).

    sampled: (N,) bool, the images of the representative sample. The null pairs each sampled image's
    gray map with the RGB map of the next sampled image (mostly of the same class: the test set is
    sorted by class): what two maps share from a common spatial habit alone, such as objects near
    the centre, not from looking at the same thing.
    """
    agreement = rank_agreement(gray_maps, rgb_maps)
    null = rank_agreement(gray_maps[sampled], np.roll(rgb_maps[sampled], 1, axis=0))
    section = {
        "sample": bootstrap(agreement[sampled], seed=seed) | {"images": int(sampled.sum())},
        "null_other_image": bootstrap(null, seed=seed),
        "sample_above_null": bootstrap(agreement[sampled] - null, seed=seed)
        | {"p": signed_rank_p(agreement[sampled] - null)},
    }
    both = sampled & (gray_right == rgb_right)
    section["same_call"] = bootstrap(agreement[both], seed=seed) | {"images": int(both.sum())}
    for name, subset in (("only_rgb_right", rgb_right & ~gray_right), ("only_gray_right", gray_right & ~rgb_right)):
        values = agreement[subset]
        section[name] = (bootstrap(values, seed=seed) if len(values) > 1 else {}) | {"images": int(len(values))}
    discordant = agreement[gray_right != rgb_right]
    if both.sum() > 1 and len(discordant) > 1:
        section["one_right_minus_same_call"] = {
            "difference": float(discordant.mean() - agreement[both].mean()),
            "p": float(stats.mannwhitneyu(discordant, agreement[both]).pvalue),
        }
    return section


def signed_rank_p(differences):
    """Wilcoxon's signed-rank p of paired differences, two-sided; 1 when every difference is 0."""
    differences = np.asarray(differences, np.float64)
    if not np.any(differences):
        return 1.0
    return float(stats.wilcoxon(differences).pvalue)
