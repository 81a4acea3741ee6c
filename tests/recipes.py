"""Training recipes for unit tests: params.yaml's shared `train` section and first seed, a test's keys over it."""

import yaml
from pipeline_project import ROOT

from cifarcam.training import models

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
SHARED = PARAMS["train"] | {"seed": PARAMS["seeds"][0]}


def recipe(**keys):
    return SHARED | keys


def build_network(arch, input_shape, **keys):
    """The network `arch` at its own widths (unless `widths` is given), built as the trainer builds it."""
    return models.build(recipe(arch=arch, widths=None) | keys, input_shape)
