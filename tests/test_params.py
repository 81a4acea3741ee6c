import copy
import subprocess
import sys

import numpy as np
import pytest
import yaml
from pipeline_project import ROOT
from recipes import build_network

from cifarcam.core import choices, names, params
from cifarcam.core.errors import PipelineError
from cifarcam.explain import methods
from cifarcam.study import tta
from cifarcam.training import augment, models, precision

DEFAULTS = yaml.safe_load((ROOT / "params.yaml").read_text())
FIRST_SEED = {"seed": DEFAULTS["seeds"][0]}


def with_value(dotted, value):
    edited = copy.deepcopy(DEFAULTS)
    section, key = dotted.split(".")
    edited[section][key] = value
    return edited


def test_the_shipped_params_are_valid():
    assert params.validate(copy.deepcopy(DEFAULTS)) == DEFAULTS


def test_every_choice_the_checks_accept_is_implemented():
    assert set(models.BUILDERS) == set(names.ARCHITECTURES)
    for flip in choices.FLIPS:
        augment.Augment(flip=flip, translate=0, cutout=0)
    for policy in choices.PRECISIONS:
        assert precision.resolve(policy) in choices.PRECISIONS[1:]
    images = np.zeros((1, 32, 32, 3), np.float32)
    for mode in choices.TTA_MODES:
        assert len(tta.views(images, mode)) >= 1
    model = build_network("study_rgb_cnn", (32, 32, 3), dropout=0.5)
    for method in choices.EXPLANATION_METHODS:
        assert methods.attribution_maps(model, images, np.array([0]), method).shape == (1, 32, 32)


def test_the_gray_and_rgb_recipes_are_one_recipe_by_default():
    """The study's comparison is fair only if the two models train alike: an edit to `train` reaches both."""
    assert DEFAULTS["train_gray"] == DEFAULTS["train_rgb"] == {}
    assert (
        params.recipe("gray", ROOT / "params.yaml")
        == params.recipe("rgb", ROOT / "params.yaml")
        == DEFAULTS["train"] | FIRST_SEED
    )


def test_a_variant_section_overrides_only_its_own_keys(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_value("train_gray.arch", "study_gray_cnn")))
    gray, rgb = (params.recipe(variant, tmp_path / "params.yaml") for variant in ("gray", "rgb"))
    assert gray == DEFAULTS["train"] | {"arch": "study_gray_cnn"} | FIRST_SEED and rgb == DEFAULTS["train"] | FIRST_SEED
    assert params.recipe("gray", tmp_path / "params.yaml", seed=7)["seed"] == 7
    assert names.model_labels(params.recipes(tmp_path / "params.yaml")) == {
        "gray": "gray study CNN",
        "rgb": "RGB airbench94",
    }


def test_an_empty_variant_section_written_as_null_is_refused_with_the_fix():
    with pytest.raises(PipelineError, match=r"train_rgb must be a mapping.*train_rgb: \{\}"):
        params.validate(DEFAULTS | {"train_rgb": None})


@pytest.mark.parametrize("old, new", sorted(params.RENAMED.items()))
def test_an_old_architecture_name_is_refused_with_its_new_name(old, new):
    with pytest.raises(PipelineError, match=f"train_gray.arch '{old}' is now called '{new}'"):
        params.validate(with_value("train_gray.arch", old))


def test_the_package_and_the_parameter_checks_load_no_backend():
    """download, preprocess and the checks must not pay TensorFlow's start-up."""
    code = (
        "import sys, cifarcam, cifarcam.core.params, cifarcam.data.download, cifarcam.data.readers, "
        "cifarcam.data.prepare\n"
        "import cifarcam.core, cifarcam.training, cifarcam.explain, cifarcam.study, cifarcam.scale\n"
        "import stages.download, stages.preprocess\n"
        "cifarcam.core.params.load_section('download')\n"
        "loaded = sorted(name for name in ('tensorflow', 'keras', 'jax') if name in sys.modules)\n"
        "assert not loaded, loaded"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "dotted, value, allowed",
    [
        ("download.source", "", "non-empty string"),
        ("download.md5", "abc", "32 hexadecimal digits"),
        ("download.retries", 0, "integer ≥ 1"),
        ("download.timeout_s", -1, "number > 0"),
        ("preprocess.val_fraction", 0, "(0, 1)"),
        ("preprocess.val_fraction", 1.0, "(0, 1)"),
        ("preprocess.val_fraction", "0.2", "(0, 1)"),
        ("preprocess.seed", 1.5, "integer ≥ 0"),
        ("preprocess.max_per_class", 0, "null or an integer ≥ 1"),
        ("train.epochs", 0, "integer ≥ 1"),
        ("train_rgb.epochs", 0, "integer ≥ 1"),
        ("train_gray.epochs", -3, "integer ≥ 1"),
        ("train.arch", "resnet1000", "study_gray_cnn, study_rgb_cnn"),
        ("train_rgb.epochs", True, "integer ≥ 1"),
        ("train_rgb.arch", "resnet1000", "study_gray_cnn, study_rgb_cnn"),
        ("train_rgb.batch_size", 0, "integer ≥ 1"),
        ("train_gray.learning_rate", 0, "number > 0"),
        ("train_gray.learning_rate", float("nan"), "number > 0"),
        ("train_rgb.dropout", 1, "[0, 1)"),
        ("train_gray.activation", "tanh", "relu, gelu"),
        ("train_rgb.patience", -1, "integer ≥ 0"),
        ("train_rgb.widths", [], "non-empty list of integers"),
        ("train_gray.widths", [64, 0], "non-empty list of integers"),
        ("train_rgb.optimizer", "rmsprop", "adamw, sgd"),
        ("train_rgb.momentum", 1.0, "[0, 1)"),
        ("train_gray.bias_lr_scale", 0, "number > 0"),
        ("train_rgb.whiten_bias_epochs", -1, "null or an integer ≥ 0"),
        ("train_gray.weight_decay_mode", "l2", "decoupled, coupled"),
        ("train_rgb.muon_learning_rate", 0, "number > 0"),
        ("train_gray.muon_momentum", 1, "[0, 1)"),
        ("train_rgb.schedule", "step", "onecycle, cosine, constant"),
        ("train_rgb.label_smoothing", 1, "[0, 1)"),
        ("train_rgb.flip", True, "none, random, alternate"),
        ("train_rgb.translate", 40, "[0, 16]"),
        ("train_rgb.cutout", 2.5, "[0, 32]"),
        ("train_gray.precision", "float16", "float32, mixed_bfloat16, mixed_float16"),
        ("evaluate.tta", "rotate", "none, flip, flip_translate"),
        ("gradcam.classes", ["cat", "unicorn"], "CIFAR-10 classes"),
        ("gradcam.classes", [], "CIFAR-10 classes"),
        ("gradcam.images_per_row", 0, "integer ≥ 1"),
        ("gradcam.method", "lime", "auto, gradcam, gradcam++, hirescam"),
        ("gradcam.layers", ["block1", "block1"], "distinct blocks"),
        ("gradcam.layers", ["conv2"], "distinct blocks"),
        ("gradcam.layer", "last", "auto (the most faithful on validation) or one of gradcam.layers"),
        ("gradcam.test_images", 1, "integer ≥ 2"),
    ],
)
def test_a_wrong_value_names_the_key_and_what_is_allowed(dotted, value, allowed):
    with pytest.raises(PipelineError) as error:
        params.validate(with_value(dotted, value))
    message = str(error.value)
    assert dotted in message and allowed in message and "\n" not in message


@pytest.mark.parametrize(
    "optimizer, mode, message",
    [
        ("adamw", "coupled", "weight_decay_mode coupled takes optimizer sgd or muon"),
        ("muon", "decoupled", "optimizer muon decays weights as SGD does"),
    ],
)
@pytest.mark.parametrize("section", ["train", "train_gray"])
def test_an_optimizer_and_a_weight_decay_mode_that_do_not_go_together_are_refused(optimizer, mode, message, section):
    edited = with_value(f"{section}.optimizer", optimizer)
    edited[section]["weight_decay_mode"] = mode
    with pytest.raises(PipelineError, match=f"{section}.{message}"):
        params.validate(edited)


def test_a_variant_section_is_checked_together_with_the_shared_keys_it_keeps():
    with pytest.raises(PipelineError, match="train_rgb.optimizer muon decays weights as SGD does"):
        params.validate(with_value("train_rgb.weight_decay_mode", "decoupled"))  # train's optimizer is muon


def test_an_unknown_key_is_refused_with_the_known_ones():
    with pytest.raises(PipelineError, match=r"unknown key train_rgb\.epoch\b.*epochs"):
        params.validate(with_value("train_rgb.epoch", 3))


@pytest.mark.parametrize(
    "seeds, message",
    [
        ([], r"seeds must be a non-empty list of integers ≥ 0, e\.g\. `seeds: \[42\]`"),
        (42, r"seeds must be a non-empty list of integers ≥ 0.*got 42$"),
        ("[1, 2]", r"seeds must be a non-empty list"),
        ([1, 2.5], r"seeds must be integers ≥ 0.*got 2\.5 in \[1, 2\.5\]"),
        ([1, -1], r"seeds must be integers ≥ 0.*got -1"),
        ([1, True], r"seeds must be integers ≥ 0.*got True"),
        ([3, 1, 3], r"seeds must be distinct, but 3 is listed more than once: list each once"),
    ],
)
def test_seeds_that_are_not_distinct_integers_are_refused_with_the_fix(seeds, message):
    with pytest.raises(PipelineError, match=message) as error:
        params.validate(DEFAULTS | {"seeds": seeds})
    assert "\n" not in str(error.value)


def test_missing_seeds_and_the_old_train_seed_are_refused_with_the_fix():
    with pytest.raises(PipelineError, match=r"no 'seeds' list: add one, e\.g\. `seeds: \[42\]`"):
        params.validate({k: v for k, v in DEFAULTS.items() if k != "seeds"})
    for section in ("train", "train_rgb"):
        with pytest.raises(
            PipelineError, match=rf"{section}\.seed is now the top-level list `seeds`: write `seeds: \[7\]`"
        ):
            params.validate(with_value(f"{section}.seed", 7))


def test_a_missing_key_is_named():
    edited = copy.deepcopy(DEFAULTS)
    del edited["preprocess"]["seed"]
    with pytest.raises(PipelineError, match=r"preprocess\.seed is missing"):
        params.validate(edited)


def test_an_unknown_or_missing_section_is_refused():
    with pytest.raises(PipelineError, match="unknown section 'trian_rgb'"):
        params.validate(DEFAULTS | {"trian_rgb": {}})
    without = {k: v for k, v in DEFAULTS.items() if k != "gradcam"}
    with pytest.raises(PipelineError, match="no 'gradcam' section"):
        params.validate(without)


def test_a_wrong_train_parameter_stops_even_the_first_stage(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_value("train_rgb.epochs", 0)))
    with pytest.raises(PipelineError, match=r"train_rgb\.epochs"):
        params.load_section("download", tmp_path / "params.yaml")


def test_broken_yaml_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("download: [unclosed\n")
    with pytest.raises(PipelineError, match="not valid YAML") as error:
        params.load_section("download", tmp_path / "params.yaml")
    assert "\n" not in str(error.value)


def test_the_layer_of_the_figures_must_be_one_of_the_layers_scored():
    params.validate(with_value("gradcam.layer", "block3"))
    wrong = with_value("gradcam.layers", ["block1", "block2"])
    wrong["gradcam"]["layer"] = "block3"
    with pytest.raises(PipelineError, match=r"gradcam.layer block3 is not one of gradcam.layers \(block1, block2\)"):
        params.validate(wrong)
