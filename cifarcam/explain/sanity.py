"""Does a method explain the model, or only the image? The model-randomisation sanity check.

Cascading randomisation (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"): from the output
down, one more group of weighted layers at a time gets random weights, and the maps are compared
with the trained model's by Spearman's rank correlation per image. A method whose maps stay the
same (an edge detector would) does not depend on what the model learned; a low correlation is good.
The trainable arrays (kernels, biases, batch norm's gamma and beta) are redrawn, seeded, from a
normal distribution with the trained array's mean and standard deviation (a kernel's mean is about
0; a gamma keeps its scale and loses what it learned); batch norm's moving statistics and other
non-trainable weights stay. The trained weights are restored at the end, whatever happens.
"""

import numpy as np
from scipy.stats import rankdata


def cascading_randomisation(model, explain, trained_maps=None, steps=4, seed=0):
    """{"mean_spearman", "per_step", "layers"} for `explain(model) -> (N, H, W) maps`.

    steps: how many groups the weighted layers (last to first) are randomised in, one more group a
    step (airbench94 has 14 weighted layers: 4 groups of 3 or 4); None is one layer a step.
    per_step[i] is the mean over images after step i, layers[i] the names step i randomised, and
    mean_spearman the mean over the steps. trained_maps: explain(model), if it is already at hand.
    """
    layers = [layer for layer in model.layers if layer.trainable_weights][::-1]
    parts = np.array_split(np.arange(len(layers)), steps or len(layers))
    groups = [[layers[i] for i in part] for part in parts if len(part)]
    trained = explain(model) if trained_maps is None else trained_maps
    saved = [(variable, variable.numpy()) for layer in layers for variable in layer.trainable_weights]
    rng = np.random.default_rng(seed)
    per_step = []
    try:
        for group in groups:
            for variable in (variable for layer in group for variable in layer.trainable_weights):
                value = variable.numpy()
                variable.assign(rng.normal(value.mean(), value.std(), value.shape).astype(value.dtype))
            per_step.append(float(spearman(trained, explain(model)).mean()))
    finally:
        for variable, value in saved:
            variable.assign(value)
    return {
        "mean_spearman": float(np.mean(per_step)),
        "per_step": per_step,
        "layers": [[layer.name for layer in group] for group in groups],
    }


def spearman(first, second):
    """(N,): Spearman's rank correlation of each pair of maps, as scipy.stats.spearmanr, but 0 where one is constant."""
    ranks = [rankdata(np.reshape(maps, (len(maps), -1)), axis=1) for maps in (first, second)]
    a, b = (r - r.mean(axis=1, keepdims=True) for r in ranks)
    scale = np.sqrt((a**2).sum(axis=1) * (b**2).sum(axis=1))
    return np.divide((a * b).sum(axis=1), scale, out=np.zeros(len(a)), where=scale > 0)
