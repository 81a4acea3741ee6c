"""What the reports call each model: its input variant and its architecture, e.g. "gray ResNet", "RGB airbench94"."""

from cifarcam.params import load_section

VARIANT_NAMES = {"gray": "gray", "rgb": "RGB"}
# train_*.arch to the name a reader knows; the study's networks under their current and earlier names.
ARCHITECTURE_NAMES = {
    "resnet": "ResNet",
    "airbench": "airbench94",
    "study_gray_cnn": "study CNN",
    "study_rgb_cnn": "study CNN",
    "seed_gray_cnn": "study CNN",
    "seed_rgb_cnn": "study CNN",
}


def model_label(variant, arch):
    """The name of one model in tables, figure titles and the write-up."""
    return f"{VARIANT_NAMES[variant]} {ARCHITECTURE_NAMES.get(arch, arch)}"


def model_labels(architectures):
    """{variant: label} from {variant: train_<variant>.arch}."""
    return {variant: model_label(variant, arch) for variant, arch in architectures.items()}


def labels_from_params(path="params.yaml"):
    """Each model's label, from the architecture its train_<variant> section names."""
    return model_labels({variant: load_section(f"train_{variant}", path)["arch"] for variant in VARIANT_NAMES})
