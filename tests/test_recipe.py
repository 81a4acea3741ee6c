import keras
import numpy as np
import pytest
import yaml

from cifarcam import recipe
from cifarcam.augment import Augment
from pipeline_project import ROOT

DEFAULTS = yaml.safe_load((ROOT / "params.yaml").read_text())["train_rgb"]


def rates(schedule, steps):
    return np.array([float(keras.ops.convert_to_numpy(schedule(step))) for step in steps])


def test_onecycle_warms_up_linearly_then_decays_to_zero():
    params = DEFAULTS | {"learning_rate": 0.4, "epochs": 10, "warmup": 0.2, "schedule": "onecycle"}
    schedule = recipe.learning_rate(params, steps_per_epoch=10)  # 100 steps, peak at 20
    assert np.allclose(rates(schedule, [0, 10, 20, 60, 100, 150]), [0.04, 0.22, 0.4, 0.2, 0.0, 0.0], atol=1e-6)


def test_cosine_warms_up_then_follows_a_half_cosine():
    params = DEFAULTS | {"learning_rate": 0.4, "epochs": 10, "warmup": 0.2, "schedule": "cosine"}
    schedule = recipe.learning_rate(params, steps_per_epoch=10)
    assert np.allclose(rates(schedule, [20, 60, 100]), [0.4, 0.2, 0.0], atol=1e-6)
    assert recipe.learning_rate(params | {"schedule": "constant"}, 10) == 0.4


@pytest.mark.parametrize("name, kind", [("adamw", keras.optimizers.AdamW), ("sgd", keras.optimizers.SGD)])
def test_the_optimizer_is_the_one_named_with_decoupled_weight_decay(name, kind):
    optimizer = recipe.optimizer(DEFAULTS | {"optimizer": name, "weight_decay": 0.05}, steps_per_epoch=10)
    assert isinstance(optimizer, kind) and optimizer.weight_decay == 0.05


def test_the_trainer_augments_in_front_of_the_network_and_keeps_the_global_policy():
    images = np.random.default_rng(0).random((40, 32, 32, 3), dtype=np.float32)
    params = DEFAULTS | {"widths": [8, 8, 8], "precision": "mixed_bfloat16", "label_smoothing": 0.2}
    trainer = recipe.compile_trainer(params, images)
    augment, network = trainer.layers
    assert isinstance(augment, Augment) and isinstance(network, keras.Model) and network.name == "resnet"
    assert network.get_layer("stage1_conv").compute_dtype == "bfloat16"
    assert network.get_layer("logits").compute_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert trainer.loss.get_config()["label_smoothing"] == 0.2


def test_label_smoothing_is_applied_to_one_hot_labels():
    assert recipe.one_hot(np.array([2, 0])).tolist()[0] == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
