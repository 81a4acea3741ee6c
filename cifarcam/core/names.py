"""What the data and the models are called: CIFAR-10's classes, the input variants and the architectures,
each with the name the reports give it (e.g. "gray ResNet", "RGB airbench94"), and where each
(variant, training seed) keeps its model, checkpoints and training logs."""

from pathlib import Path

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
VARIANTS = {"gray": "gray", "rgb": "RGB"}  # prepared data and a model per input variant
ARCHITECTURES = {
    "resnet": "ResNet",
    "airbench": "airbench94",
    "study_gray_cnn": "study CNN",
    "study_rgb_cnn": "study CNN",
}


def model_label(variant, arch):
    """The name of one model in tables, figure titles and the write-up."""
    return f"{VARIANTS[variant]} {ARCHITECTURES[arch]}"


def model_labels(recipes):
    """{variant: the name of its model} from {variant: its training recipe}."""
    return {variant: model_label(variant, recipe["arch"]) for variant, recipe in recipes.items()}


def model_path(variant, seed):
    return Path("models") / variant / f"seed{seed}.keras"


def checkpoint_dir(variant, seed):
    return Path("checkpoints") / variant / f"seed{seed}"


def training_logs(variant, seed):
    """The folder of one training's dvclive metrics and curves."""
    return Path("reports/train") / variant / f"seed{seed}"
