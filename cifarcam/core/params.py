"""Read params.yaml, checking every parameter of every stage before any stage does work.

The training recipe is one section, `train`, that every variant shares; `train_<variant>` holds only
the keys where one variant differs (none by default), so that an edit to the recipe reaches both.
`seeds` lists the training seeds: each variant trains one model per seed.
"""

import math
import re
from pathlib import Path

import yaml

from cifarcam.core.choices import (
    ACTIVATIONS,
    EXPLANATION_METHODS,
    FLIPS,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    TTA_MODES,
    WEIGHT_DECAY_MODES,
)
from cifarcam.core.errors import PipelineError
from cifarcam.core.names import ARCHITECTURES, CLASSES, VARIANTS

# Names that params.yaml once took, refused with the name that replaced them.
RENAMED = {"seed_gray_cnn": "study_gray_cnn", "seed_rgb_cnn": "study_rgb_cnn"}


def _integer(low, high=math.inf):
    allowed = f"an integer ≥ {low}" if high == math.inf else f"an integer in [{low}, {high}]"
    return lambda v: (isinstance(v, int) and not isinstance(v, bool) and low <= v <= high, allowed)


def _number(check, allowed):
    return lambda v: (
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and check(v),
        allowed,
    )


def _optional(rule):
    return lambda v: (True, "") if v is None else (rule(v)[0], f"null or {rule(v)[1]}")


def _choice(options):
    return lambda v: (v in options, f"one of {', '.join(options)}")


def _widths(v):
    ok = isinstance(v, list) and v and all(_integer(1)(width)[0] for width in v)
    return ok, "a non-empty list of integers ≥ 1 (filters per stage)"


_fraction = _number(lambda v: 0 <= v < 1, "a number in [0, 1)")
_positive = _number(lambda v: v > 0, "a number > 0")


def _text(v):
    return isinstance(v, str) and v.strip() != "", "a non-empty string"


def _md5(v):
    return isinstance(v, str) and re.fullmatch(r"[0-9a-fA-F]{32}", v) is not None, "32 hexadecimal digits"


def _class_list(v):
    ok = isinstance(v, list) and v and all(name in CLASSES for name in v)
    return ok, f"a non-empty list of CIFAR-10 classes ({', '.join(CLASSES)})"


def _block(v):
    return isinstance(v, str) and re.fullmatch(r"block[1-9][0-9]*", v) is not None


def _block_list(v):
    ok = isinstance(v, list) and v and all(_block(name) for name in v) and len(set(v)) == len(v)
    return ok, "a non-empty list of distinct blocks, block1 (the shallowest after the first pooling) to block3"


def _block_or_auto(v):
    return v == "auto" or _block(v), "auto (the most faithful on validation) or one of gradcam.layers, e.g. block3"


RECIPE = {
    "arch": _choice(tuple(ARCHITECTURES)),
    "widths": _optional(_widths),
    "depth": _integer(0),
    "batchnorm_momentum": _fraction,
    "activation": _choice(ACTIVATIONS),
    "dropout": _fraction,
    "epochs": _integer(1),
    "batch_size": _integer(1),
    "optimizer": _choice(OPTIMIZERS),
    "momentum": _fraction,
    "learning_rate": _positive,
    "muon_learning_rate": _positive,
    "muon_momentum": _fraction,
    "bias_lr_scale": _positive,
    "whiten_bias_epochs": _optional(_integer(0)),
    "schedule": _choice(SCHEDULES),
    "warmup": _fraction,
    "lr_start": _fraction,
    "lr_end": _fraction,
    "weight_decay": _number(lambda v: v >= 0, "a number ≥ 0"),
    "weight_decay_mode": _choice(WEIGHT_DECAY_MODES),
    "label_smoothing": _fraction,
    "lookahead": _integer(0),
    "flip": _choice(FLIPS),
    "translate": _integer(0, 16),
    "cutout": _integer(0, 32),
    "precision": _choice(PRECISIONS),
    "patience": _optional(_integer(0)),
}
SCHEMA = {
    "download": {
        "source": _text,
        "md5": _optional(_md5),
        "retries": _integer(1),
        "timeout_s": _positive,
    },
    "preprocess": {
        "val_fraction": _number(lambda v: 0 < v < 1, "a number in (0, 1)"),
        "seed": _integer(0),
        "max_per_class": _optional(_integer(1)),
    },
    "train": RECIPE,
    **{f"train_{variant}": RECIPE for variant in VARIANTS},  # optional keys: only where a variant differs
    "evaluate": {
        "tta": _choice(TTA_MODES),
        "calibration_bins": _integer(1),
    },
    "gradcam": {
        "method": _choice(("auto", *EXPLANATION_METHODS)),
        "layers": _block_list,
        "layer": _block_or_auto,
        "validation_images": _integer(1),
        "test_images": _integer(2),
        "steps": _integer(1),
        "sanity_images": _integer(1),
        "grid_images": _integer(1),
        "classes": _class_list,
        "images_per_row": _integer(1),
        "confused_pairs": _integer(1),
        "mean_images": _integer(1),
        "mistake_rows": _integer(1),
    },
}
OVERRIDES = [f"train_{variant}" for variant in VARIANTS]


def validate(params, path="params.yaml"):
    """Raise a one-line PipelineError for the first wrong, missing or unknown key."""
    if not isinstance(params, dict):
        raise PipelineError(f"{path} must map stage names to sections: restore it from git")
    for section in params.keys() - SCHEMA.keys() - {"seeds"}:
        raise PipelineError(f"{path}: unknown section '{section}'; the sections are seeds, {', '.join(SCHEMA)}")
    _check_seeds(params.get("seeds"), path)
    for section, rules in SCHEMA.items():
        values = params.get(section)
        if section in OVERRIDES and section in params and not isinstance(values, dict):
            raise PipelineError(
                f"{path}: {section} must be a mapping of the keys it overrides: write `{section}: {{}}` for none"
            )
        if not isinstance(values, dict):
            raise PipelineError(f"{path} has no '{section}' section: restore it from git")
        if section in ("train", *OVERRIDES) and "seed" in values:
            raise PipelineError(
                f"{path}: {section}.seed is now the top-level list `seeds`: write `seeds: [{values['seed']}]` and "
                f"delete {section}.seed"
            )
        for key in values.keys() - rules.keys():
            raise PipelineError(f"{path}: unknown key {section}.{key}; {section} takes {', '.join(rules)}")
        for key, rule in rules.items():
            if key not in values:
                if section in OVERRIDES:
                    continue
                raise PipelineError(f"{path}: {section}.{key} is missing; add it (see the comments in params.yaml)")
            if isinstance(values[key], str) and values[key] in RENAMED:
                raise PipelineError(
                    f"{path}: {section}.{key} '{values[key]}' is now called '{RENAMED[values[key]]}': rename it"
                )
            ok, allowed = rule(values[key])
            if not ok:
                raise PipelineError(f"{path}: {section}.{key} must be {allowed}, got {values[key]!r}")
    _check_optimizer(params["train"], "train", path)
    explained = params["gradcam"]
    if explained["layer"] not in ("auto", *explained["layers"]):
        raise PipelineError(
            f"{path}: gradcam.layer {explained['layer']} is not one of gradcam.layers "
            f"({', '.join(explained['layers'])}): add it there, or set layer: auto"
        )
    for section in OVERRIDES:
        if params[section]:
            _check_optimizer(params["train"] | params[section], section, path)
    return params


def _check_seeds(seeds, path):
    example = "e.g. `seeds: [42]`, or `seeds: [42, 1, 2]` for the spread over trainings"
    if seeds is None:
        raise PipelineError(f"{path} has no 'seeds' list: add one, {example}")
    if not isinstance(seeds, list) or not seeds:
        raise PipelineError(f"{path}: seeds must be a non-empty list of integers ≥ 0, {example}; got {seeds!r}")
    for seed in seeds:
        if not _integer(0)(seed)[0]:
            raise PipelineError(f"{path}: seeds must be integers ≥ 0, {example}; got {seed!r} in {seeds!r}")
    if len(set(seeds)) < len(seeds):
        repeated = ", ".join(str(seed) for seed in sorted({seed for seed in seeds if seeds.count(seed) > 1}))
        raise PipelineError(f"{path}: seeds must be distinct, but {repeated} is listed more than once: list each once")


def _check_optimizer(recipe, section, path):
    if recipe["weight_decay_mode"] == "coupled" and recipe["optimizer"] == "adamw":
        raise PipelineError(
            f"{path}: {section}.weight_decay_mode coupled takes optimizer sgd or muon: "
            "set optimizer: sgd or weight_decay_mode: decoupled"
        )
    if recipe["optimizer"] == "muon" and recipe["weight_decay_mode"] != "coupled":
        raise PipelineError(
            f"{path}: {section}.optimizer muon decays weights as SGD does, coupled: set weight_decay_mode: coupled"
        )


def load(path="params.yaml"):
    """The whole of params.yaml, checked."""
    try:
        params = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path} not found: run the stage from the repository root") from None
    except yaml.YAMLError as error:
        raise PipelineError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None
    return validate(params, path)


def load_section(section, path="params.yaml"):
    """One stage's section, after checking the whole file."""
    return load(path)[section]


def seeds(path="params.yaml"):
    """The training seeds, in params.yaml's order; the first is the run the figures and maps explain."""
    return load(path)["seeds"]


def recipe(variant, path="params.yaml", seed=None):
    """The training recipe of one variant: the shared `train` section with `train_<variant>`'s keys over
    it, and `seed` (by default the first of `seeds`)."""
    params = load(path)
    return params["train"] | params[f"train_{variant}"] | {"seed": params["seeds"][0] if seed is None else seed}


def recipes(path="params.yaml"):
    """{variant: its training recipe}, for every variant."""
    return {variant: recipe(variant, path) for variant in VARIANTS}
