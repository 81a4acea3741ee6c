"""The explanations of both models put to the test: reports/explanations.json's numbers.

1. On validation images, every candidate (method, layer) is scored by ROAD; `auto` picks the best
   for both models together, so that gray and RGB are explained by the same method at the same
   resolution. The test set plays no part in the choice.
2. On test images, every candidate and the nulls at each resolution get the four scores with
   bootstrap intervals, and each method a model-randomisation check.
3. The study's claims about attention, retested per image: are the maps more concentrated than
   random maps at their own resolution, and how far does colour move where the model looks.

Each map explains the class the model predicts with test-time augmentation: the evaluate stage's
predictions, those of the tables.
"""

import time

import numpy as np

from cifarcam.explain import examples, faithfulness, geometry, methods, nulls, sanity, scoring
from cifarcam.study import attention
from cifarcam.study.seeds import holm

NULL_DRAWS = 8  # random maps per image behind the diffuseness null


def choice_on_validation(models, data, params, probabilities):
    """(the chosen candidate, {candidate: {variant: validation score}}), from `validation_images` images."""
    pairs = scoring.candidates(params["method"], params["layer"], params["layers"])
    validation = {}
    for variant, model in models.items():
        chosen = examples.spread(len(data[variant]["x_val"]), params["validation_images"])
        images, classes = data[variant]["x_val"][chosen], probabilities[variant]["val"][chosen].argmax(axis=1)
        maps, _ = scoring.maps_of(model, images, classes, pairs)
        validation[variant] = scoring.scored(model, images, classes, maps, params["steps"])
    return scoring.choose(validation)


def test_scores(model, images, classes, params):
    """One model's section: every candidate's and null's scores, the methods' times and sanity, and the maps."""
    pairs = scoring.candidates("auto", "auto", params["layers"])
    maps, seconds = scoring.maps_of(model, images, classes, pairs)
    null_maps = scoring.null_maps_of(model, images, [*params["layers"], scoring.PIXELS])
    scores = scoring.scored(model, images, classes, maps | null_maps, params["steps"])
    section = {"images": int(len(images)), "scores": {}, "nulls": {}, "resolution": {}, "sanity": {}, "seconds": {}}
    for (name, layer), per_image in scores.items():
        group = "nulls" if (name, layer) in null_maps else "scores"
        section[group].setdefault(name, {})[layer] = scoring.summary(per_image)
    for layer in [*params["layers"], scoring.PIXELS]:
        section["resolution"][layer] = scoring.resolution(model, layer)
    shown = examples.spread(len(images), params["sanity_images"])  # of every class: the images are sorted by class
    for name in methods.METHODS:
        layer = scoring.PIXELS if name in methods.PIXEL_METHODS else params["layers"][-1]
        start = time.perf_counter()
        check = sanity.cascading_randomisation(
            model,
            lambda randomised, name=name, layer=layer: methods.attribution_maps(
                randomised, images[shown], classes[shown], name, scoring.target(randomised, layer)
            ),
            seed=0,
        )
        section["sanity"][name] = {"layer": layer, "mean_spearman": check["mean_spearman"]}
        section["seconds"][name] = {"maps": seconds[name], "sanity": time.perf_counter() - start}
    return section, maps, scores


def against_nulls(scores, chosen, seed=0):
    """The chosen candidate's ROAD combined score minus each null's at its resolution, per image, with Wilcoxon's p."""
    mine = faithfulness.road_combined(scores[chosen])
    found = {}
    for null in nulls.NULLS:
        difference = mine - faithfulness.road_combined(scores[null, chosen[1]])
        found[null] = faithfulness.bootstrap(difference, seed=seed) | {"p": attention.signed_rank_p(difference)}
    return found


def retested_diffuseness(models, images, maps):
    """Per candidate: each model's concentration above random maps at its resolution, gray and RGB paired."""
    section, p_values = {}, {}
    for candidate in maps["gray"]:
        excess = {}
        for variant, model in models.items():
            at = scoring.target(model, candidate[1])
            centres = None if at is None else geometry.cell_centres(model, at)
            draws = [nulls.null_maps(images[variant], centres, seed=draw)["random"] for draw in range(NULL_DRAWS)]
            excess[variant] = attention.over_null(maps[variant][candidate], draws)
        found = attention.diffuseness(excess)
        section.setdefault(candidate[0], {})[candidate[1]] = found
        p_values[candidate] = found["rgb_minus_gray"]["p"]
    for candidate, adjusted in zip(p_values, holm(list(p_values.values())), strict=True):
        section[candidate[0]][candidate[1]]["rgb_minus_gray"]["holm_p"] = adjusted
    return section


def assess(models, data, params, predictions):
    """(reports/explanations.json's content, the chosen candidate).

    predictions: {variant: {"test": ..., "val": ...}}, the evaluate stage's TTA probabilities.
    """
    chosen, validation = choice_on_validation(models, data, params, predictions)
    probabilities = {variant: predictions[variant]["test"] for variant in models}
    truth = data["rgb"]["y_test"]
    picked = examples.spread(len(truth), params["test_images"])
    images = {variant: data[variant]["x_test"][picked] for variant in models}
    section = {
        "choice": {
            "method": chosen[0],
            "layer": chosen[1],
            "resolution": scoring.resolution(models["rgb"], chosen[1]),
            "validation_road_combined": validation[chosen],
            "rule": "the highest ROAD LeRF − MoRF on validation images, mean over both models",
        },
        "validation": _nest(validation),
    }
    maps = {}
    for variant, model in models.items():
        classes = probabilities[variant][picked].argmax(axis=1)
        section[variant], maps[variant], scores = test_scores(model, images[variant], classes, params)
        section[variant]["chosen_minus_nulls"] = against_nulls(scores, chosen)
    tested = [(variant, null) for variant in models for null in nulls.NULLS]
    adjusted = holm([section[variant]["chosen_minus_nulls"][null]["p"] for variant, null in tested])
    for (variant, null), p in zip(tested, adjusted, strict=True):
        section[variant]["chosen_minus_nulls"][null]["holm_p"] = p
    section["diffuseness"] = retested_diffuseness(models, images, maps)
    section["colour_attention"] = colour_attention(models, data, probabilities, picked, chosen)
    return section, chosen


def colour_attention(models, data, probabilities, picked, chosen):
    """Gray's and RGB's maps of the same images compared, on the test images scored and every image that only
    one model gets right (a few hundred: too few among the scored ones)."""
    truth = data["rgb"]["y_test"]
    right = {variant: probabilities[variant].argmax(axis=1) == truth for variant in models}
    shown = np.union1d(picked, np.flatnonzero(right["gray"] != right["rgb"]))
    maps = {
        variant: methods.attribution_maps(
            model,
            data[variant]["x_test"][shown],
            probabilities[variant][shown].argmax(axis=1),
            chosen[0],
            scoring.target(model, chosen[1]),
        )
        for variant, model in models.items()
    }
    sampled = np.isin(shown, picked)
    found = attention.colour_and_attention(
        maps["gray"], maps["rgb"], right["gray"][shown], right["rgb"][shown], sampled
    )
    return found | {"method": chosen[0], "layer": chosen[1]}


def _nest(by_candidate):
    nested = {}
    for (method, layer), value in by_candidate.items():
        nested.setdefault(method, {})[layer] = value
    return nested
