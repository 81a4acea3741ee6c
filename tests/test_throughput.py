"""bench.throughput's recipes: the configured ones and their study-CNN references each compile an optimizer."""

from bench import throughput
from cifarcam.core.params import recipe
from cifarcam.training.optimizers import optimizer


def test_the_throughput_bench_gives_each_configured_recipe_and_a_study_cnn_on_adamw_beside_it():
    params = {f"train_{variant}": recipe(variant) for variant in ("gray", "rgb")}
    optimizers = {
        name: type(optimizer(section, steps_per_epoch=10)).__name__
        for name, section, _ in throughput.recipes(params, {"batch_size": 256, "precision": "float32"})
    }
    configured = {
        variant: type(optimizer(params[f"train_{variant}"], steps_per_epoch=10)).__name__ for variant in ("gray", "rgb")
    }
    assert optimizers == {
        f"gray: {params['train_gray']['arch']} {params['train_gray']['widths']}": configured["gray"],
        "gray: study_gray_cnn (reference)": "AdamW",
        f"rgb: {params['train_rgb']['arch']} {params['train_rgb']['widths']}": configured["rgb"],
        "rgb: study_rgb_cnn (reference)": "AdamW",
    }
