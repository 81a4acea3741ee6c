import keras
import numpy as np
import pytest
from recipes import SHARED

from cifarcam.data.prepare import to_unit_range
from cifarcam.training import layers, optimizers, recipe
from cifarcam.training.augment import Augment
from cifarcam.training.batches import Batches
from cifarcam.training.schedule import learning_rate

DEFAULTS = SHARED | {"batch_size": 8}  # the tests train on a few images


def rates(schedule, steps):
    return np.array([float(keras.ops.convert_to_numpy(schedule(step))) for step in steps])


def test_onecycle_warms_up_linearly_then_decays_linearly():
    params = DEFAULTS | {
        "learning_rate": 0.4,
        "epochs": 10,
        "warmup": 0.2,
        "schedule": "onecycle",
        "lr_start": 0.1,
        "lr_end": 0.0,
    }
    schedule = learning_rate(params, steps_per_epoch=10)  # 100 steps, peak at 20
    assert np.allclose(rates(schedule, [0, 10, 20, 60, 100, 150]), [0.04, 0.22, 0.4, 0.2, 0.0, 0.0], atol=1e-6)
    ends = learning_rate(params | {"lr_start": 0.2, "lr_end": 0.07}, steps_per_epoch=10)
    assert np.allclose(rates(ends, [0, 20, 100, 150]), [0.08, 0.4, 0.028, 0.028], atol=1e-6)


def test_cosine_warms_up_then_follows_a_half_cosine_to_its_end_rate():
    params = DEFAULTS | {
        "learning_rate": 0.4,
        "epochs": 10,
        "warmup": 0.2,
        "schedule": "cosine",
        "lr_start": 0.1,
        "lr_end": 0.0,
    }
    schedule = learning_rate(params, steps_per_epoch=10)
    assert np.allclose(rates(schedule, [0, 20, 60, 100]), [0.04, 0.4, 0.2, 0.0], atol=1e-6)
    ends = learning_rate(params | {"lr_end": 0.5}, steps_per_epoch=10)
    assert np.allclose(rates(ends, [20, 60, 100]), [0.4, 0.3, 0.2], atol=1e-6)
    assert learning_rate(params | {"schedule": "constant"}, 10) == 0.4


@pytest.mark.parametrize("name, kind", [("adamw", keras.optimizers.AdamW), ("sgd", keras.optimizers.SGD)])
def test_the_optimizer_is_the_one_named_with_decoupled_weight_decay_and_the_momentum(name, kind):
    optimizer = optimizers.optimizer(
        DEFAULTS | {"optimizer": name, "weight_decay_mode": "decoupled", "weight_decay": 0.05, "momentum": 0.85},
        steps_per_epoch=10,
    )
    assert isinstance(optimizer, kind) and optimizer.weight_decay == 0.05
    assert (optimizer.momentum if name == "sgd" else optimizer.beta_1) == 0.85


def one_step_changes(params, gradient=1.0):
    """How far one step moves a BN shift, a BN scale and a kernel that all have the same gradient."""
    norm = keras.layers.BatchNormalization()
    norm.build((None, 2))
    dense = keras.layers.Dense(2, use_bias=False)
    dense.build((None, 2))
    variables = [norm.beta, norm.gamma, dense.kernel]
    for variable in variables:  # from 0, so that the change is the step itself, not rounded into a random start
        variable.assign(keras.ops.zeros(variable.shape))
    before = [keras.ops.convert_to_numpy(v).copy() for v in variables]
    optimizer = optimizers.optimizer(params, steps_per_epoch=10)
    optimizer.apply_gradients([(keras.ops.full(v.shape, gradient), v) for v in variables])
    return [float(np.abs(keras.ops.convert_to_numpy(v) - b).max()) for v, b in zip(variables, before, strict=True)]


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_bias_lr_scale_speeds_up_only_the_batch_norm_shifts(name):
    params = DEFAULTS | {
        "optimizer": name,
        "weight_decay_mode": "decoupled",
        "schedule": "constant",
        "learning_rate": 0.01,
        "weight_decay": 0.0,
    }
    plain, scaled = one_step_changes(params | {"bias_lr_scale": 1}), one_step_changes(params | {"bias_lr_scale": 64})
    assert scaled[0] == pytest.approx(64 * plain[0], rel=1e-4)
    assert scaled[1:] == pytest.approx(plain[1:], rel=1e-6) and plain[1] > 0


def test_bias_lr_scale_survives_a_save_and_load(tmp_path):
    params = DEFAULTS | {
        "arch": "resnet",
        "optimizer": "sgd",
        "weight_decay_mode": "decoupled",
        "momentum": 0.85,
        "bias_lr_scale": 64,
        "widths": [8, 8, 8],
    }
    trainer = recipe.compile_trainer(params, np.zeros((8, 32, 32, 3), np.uint8))
    trainer.optimizer.build(trainer.trainable_variables)  # as after a step: its state is saved too
    trainer.save(tmp_path / "trainer.keras")
    loaded = keras.models.load_model(tmp_path / "trainer.keras").optimizer
    assert isinstance(loaded, optimizers.SGD) and loaded.bias_lr_scale == 64 and loaded.momentum == 0.85


def test_the_trainer_scales_and_augments_in_front_of_the_network_and_keeps_the_global_policy():
    images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    params = DEFAULTS | {"arch": "resnet", "widths": [8, 8, 8], "precision": "mixed_bfloat16", "label_smoothing": 0.2}
    trainer = recipe.compile_trainer(params, images)
    scale, augment, network = trainer.layers
    assert isinstance(scale, layers.UnitRange) and scale.compute_dtype == "float32"
    assert isinstance(augment, Augment) and isinstance(network, keras.Model) and network.name == "resnet"
    assert network.get_layer("stage1_conv").compute_dtype == "bfloat16"
    assert network.get_layer("logits").compute_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert trainer.loss.get_config()["label_smoothing"] == 0.2


def test_label_smoothing_is_applied_to_one_hot_labels():
    assert recipe.one_hot(np.array([2, 0])).tolist()[0] == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]


def test_airbench_whitening_is_set_from_training_images_spread_over_the_classes():
    # 12,000 images ordered by class, as the split keeps them; each class has its own brightness
    rng = np.random.default_rng(0)
    brightness = np.repeat(np.linspace(0.1, 0.9, 10), 1200)[:, None, None, None]
    images = np.round(255 * (brightness + 0.05 * rng.random((12_000, 32, 32, 1)))).astype(np.uint8)
    params = DEFAULTS | {"arch": "airbench", "widths": [8, 8, 8], "batchnorm_momentum": 0.6, "precision": "float32"}
    network = recipe.compile_trainer(params, images).layers[-1]
    whiten = network.get_layer("whiten")
    whitened = keras.ops.convert_to_numpy(whiten(to_unit_range(images[::7])))
    assert np.abs(whitened.mean(axis=(0, 1, 2))).max() < 0.05  # centred on all classes, not on the first ones


def test_the_trainer_scales_uint8_pixels_exactly_as_load_prepared_does():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    scaled = keras.ops.convert_to_numpy(layers.UnitRange(dtype="float32")(pixels))
    np.testing.assert_array_equal(scaled, to_unit_range(pixels))


def test_the_trainer_refuses_float_images_with_the_fix():
    with pytest.raises(ValueError, match="uint8 images.*scale=False"):
        recipe.compile_trainer(DEFAULTS, np.zeros((8, 32, 32, 3), np.float32))


def test_coupled_sgd_with_airbenchs_values_steps_as_airbench94s_torch_sgd():
    """Five steps on a kernel and a BN shift against torch.optim.SGD's update written out in NumPy,
    with airbench94's hyperparameters as bench/airbench_cpu.py sets them (a summed loss, so
    gradients batch_size times the mean's) and its one-cycle rate factors."""
    from bench.gpu_recipes import AIRBENCH_RECIPE

    batch, momentum = 1024, 0.85
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr, wd = 11.5 / kilostep_scale, 0.0153 * batch / kilostep_scale
    torch_groups = {"beta": (lr * 64, wd / (lr * 64)), "kernel": (lr, wd / lr)}  # (lr, weight_decay) of the param group
    steps, total = 5, 10  # int(0.23 * total) and round(0.23 * total) agree
    factors = np.interp(np.arange(steps), [0, int(0.23 * total), total], [0.2, 1.0, 0.07])

    params = DEFAULTS | AIRBENCH_RECIPE | {"epochs": 1}
    optimizer = optimizers.optimizer(params, steps_per_epoch=total)
    assert isinstance(optimizer, optimizers.CoupledSGD) and optimizer.weight_decay is None  # no decoupled decay as well
    norm, dense = keras.layers.BatchNormalization(), keras.layers.Dense(3, use_bias=False)
    norm.build((None, 3))
    dense.build((None, 3))
    rng = np.random.default_rng(0)
    weights = {"beta": rng.normal(size=3), "kernel": rng.normal(size=(3, 3))}
    norm.beta.assign(weights["beta"])
    dense.kernel.assign(weights["kernel"])
    buffers = {name: np.zeros_like(w) for name, w in weights.items()}
    for step in range(steps):
        mean_gradients = {name: rng.normal(size=w.shape) for name, w in weights.items()}
        optimizer.apply_gradients(
            [
                (keras.ops.convert_to_tensor(mean_gradients["beta"], "float32"), norm.beta),
                (keras.ops.convert_to_tensor(mean_gradients["kernel"], "float32"), dense.kernel),
            ]
        )
        for name, (group_lr, group_wd) in torch_groups.items():
            gradient = batch * mean_gradients[name] + group_wd * weights[name]  # torch: d_p = grad + weight_decay * p
            buffers[name] = momentum * buffers[name] + gradient  # buf = momentum * buf + d_p
            weights[name] = weights[name] - group_lr * factors[step] * (gradient + momentum * buffers[name])  # nesterov
    assert np.allclose(keras.ops.convert_to_numpy(norm.beta), weights["beta"], rtol=1e-5, atol=1e-6)
    assert np.allclose(keras.ops.convert_to_numpy(dense.kernel), weights["kernel"], rtol=1e-5, atol=1e-6)


def test_coupled_weight_decay_takes_sgd():
    with pytest.raises(ValueError, match="takes optimizer sgd"):
        optimizers.optimizer(DEFAULTS | {"weight_decay_mode": "coupled", "optimizer": "adamw"}, steps_per_epoch=10)


@pytest.mark.parametrize("mode, optimizer", [("coupled", "sgd"), ("decoupled", "sgd"), ("decoupled", "adamw")])
def test_the_whitening_bias_trains_for_whiten_bias_epochs_then_neither_steps_nor_decays(mode, optimizer, tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    params = DEFAULTS | {
        "arch": "airbench",
        "widths": [8, 8, 8],
        "precision": "float32",
        "batch_size": 8,
        "epochs": 3,
        "optimizer": optimizer,
        "weight_decay_mode": mode,
        "weight_decay": 0.01,
        "schedule": "constant",
        "learning_rate": 0.05,
        "whiten_bias_epochs": 2,
    }
    trainer = recipe.compile_trainer(params, images)
    bias = trainer.layers[-1].get_layer("whiten").bias
    kernel = trainer.layers[-1].get_layer("group1_conv1").kernel
    per_step = []
    for _epoch in range(params["epochs"]):
        for batch in range(4):
            before = [keras.ops.convert_to_numpy(v).copy() for v in (bias, kernel)]
            trainer.train_on_batch(images[8 * batch : 8 * batch + 8], recipe.one_hot(np.arange(8) % 10))
            per_step.append(
                [
                    not np.array_equal(keras.ops.convert_to_numpy(v), b)
                    for v, b in zip((bias, kernel), before, strict=True)
                ]
            )
    assert per_step[:8] == [[True, True]] * 8  # 2 epochs of 4 steps: the bias learns
    assert per_step[8:] == [[False, True]] * 4  # then it stays (no step, no decay), while the rest trains on
    assert "whiten/bias" not in [v.path for v in trainer.optimizer.variables]  # JAX would donate its buffer twice
    trainer.save(tmp_path / "trainer.keras")
    assert keras.models.load_model(tmp_path / "trainer.keras").optimizer.whiten_bias_steps == 8


def test_on_tensorflow_the_stopped_whitening_bias_leaves_the_training_step_and_changes_no_weight():
    images = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    labels = recipe.one_hot(np.arange(32) % 10)
    params = DEFAULTS | {
        "arch": "airbench",
        "widths": [8, 8, 8],
        "precision": "float32",
        "epochs": 3,
        "whiten_bias_epochs": 1,
    }
    trained = {}
    for frozen in (False, True):
        keras.utils.set_random_seed(0)
        trainer = recipe.compile_trainer(params, images)
        added = recipe.callbacks(params, trainer, len(images)) if frozen else []
        trainable, steps = [], []
        for epoch in range(
            params["epochs"]
        ):  # one fit per epoch, as bench.race trains: the callback acts on a later call too
            trainer.fit(
                Batches(images, labels, 8, seed=0, epoch=epoch),
                initial_epoch=epoch,
                epochs=epoch + 1,
                shuffle=False,
                callbacks=added,
                verbose=0,
            )
            trainable.append("whiten/bias" in [v.path for v in trainer.trainable_weights])
            steps.append(trainer.train_function)
        trained[frozen] = [keras.ops.convert_to_numpy(v) for v in trainer.layers[-1].weights], trainable, steps
    assert [type(c) for c in recipe.callbacks(params, trainer, 32)] == [recipe.FreezeWhiteningBias]
    assert trained[False][1] == [True, True, True]
    assert trained[True][1] == [True, False, False]  # from epoch 1 on, the step has no gradient for the bias
    first, *rebuilt = trained[True][2]
    assert rebuilt[0] is not first and rebuilt[1] is rebuilt[0]  # the step is rebuilt once, when the bias leaves it
    assert all(
        np.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(trained[False][0], trained[True][0], strict=True)
    )


AIRBENCH_QUINTIC = (3.4445, -4.7750, 2.0315)


def zeropower(matrix, steps=3):
    """airbench94_muon's zeropower_via_newtonschulz5, in NumPy (float64), on PyTorch's (outputs, the rest) layout."""
    a, b, c = AIRBENCH_QUINTIC
    x = matrix / (np.linalg.norm(matrix) + 1e-7)
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def test_orthogonalizing_brings_an_updates_singular_values_together():
    update = np.random.default_rng(0).normal(size=(3, 3, 16, 32)) * np.geomspace(0.1, 10, 32)  # columns 100x apart
    ours = keras.ops.convert_to_numpy(optimizers.orthogonalized(keras.ops.convert_to_tensor(update, "float32")))
    torch_layout = update.transpose(3, 2, 0, 1).reshape(32, -1)  # PyTorch's (out, in, kh, kw), flattened
    expected = zeropower(torch_layout).reshape(32, 16, 3, 3).transpose(2, 3, 1, 0)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    before, after = (np.linalg.svd(m.reshape(-1, 32), compute_uv=False) for m in (update, ours))
    assert before.max() / before.min() > 100 and after.max() / after.min() < 10  # three steps: near 1, not at it


def test_muon_steps_kernels_as_airbench94_muon_and_the_rest_as_coupled_sgd():
    params = DEFAULTS | {
        "optimizer": "muon",
        "weight_decay_mode": "coupled",
        "learning_rate": 1.5,
        "momentum": 0.85,
        "muon_learning_rate": 0.24,
        "muon_momentum": 0.6,
        "weight_decay": 0.002,
        "schedule": "constant",
    }
    optimizer = optimizers.optimizer(params, steps_per_epoch=10)
    conv, dense = keras.layers.Conv2D(8, 3, use_bias=False), keras.layers.Dense(3, use_bias=False)
    conv.build((None, 6, 6, 4))
    dense.build((None, 5))
    rng = np.random.default_rng(1)
    kernel, weights = rng.normal(size=(8, 4, 3, 3)), rng.normal(size=(5, 3))  # PyTorch's layout for the kernel
    conv.kernel.assign(kernel.transpose(2, 3, 1, 0))
    dense.kernel.assign(weights)
    kernel_buffer, dense_buffer = np.zeros_like(kernel), np.zeros_like(weights)
    for _ in range(3):
        kernel_gradient, dense_gradient = rng.normal(size=kernel.shape), rng.normal(size=weights.shape)
        optimizer.apply_gradients(
            [
                (keras.ops.convert_to_tensor(kernel_gradient.transpose(2, 3, 1, 0), "float32"), conv.kernel),
                (keras.ops.convert_to_tensor(dense_gradient, "float32"), dense.kernel),
            ]
        )
        kernel_buffer = 0.6 * kernel_buffer + kernel_gradient  # airbench94_muon's Muon.step
        update = zeropower((kernel_gradient + 0.6 * kernel_buffer).reshape(8, -1)).reshape(kernel.shape)
        kernel = kernel * np.sqrt(8) / np.linalg.norm(kernel) - 0.24 * update
        dense_gradient = dense_gradient + 0.002 * weights  # torch.optim.SGD, Nesterov
        dense_buffer = 0.85 * dense_buffer + dense_gradient
        weights = weights - 1.5 * (dense_gradient + 0.85 * dense_buffer)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(conv.kernel), kernel.transpose(2, 3, 1, 0), atol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(dense.kernel), weights, rtol=1e-5, atol=1e-5)


def test_under_muon_the_whitening_bias_learns_at_the_rate_of_bns_shifts():
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    params = DEFAULTS | {
        "arch": "airbench",
        "widths": [8, 8, 8],
        "precision": "float32",
        "batch_size": 8,
        "optimizer": "muon",
        "weight_decay_mode": "coupled",
        "weight_decay": 0.0,
        "schedule": "constant",
        "bias_lr_scale": 64,
    }
    trainer = recipe.compile_trainer(params, images)
    network = trainer.layers[-1]
    biases = network.get_layer("whiten").bias, network.get_layer("group1_1_bn").beta, network.get_layer("logits").kernel
    before = [keras.ops.convert_to_numpy(bias).copy() for bias in biases]
    trainer.optimizer.apply_gradients([(keras.ops.ones(bias.shape), bias) for bias in biases])
    steps = [(keras.ops.convert_to_numpy(bias) - old).ravel()[0] for bias, old in zip(biases, before, strict=True)]
    nesterov_step = -params["learning_rate"] * (1 + params["momentum"])  # a first step from a zero momentum
    assert steps[0] == steps[1] == pytest.approx(64 * nesterov_step, rel=1e-6)
    assert steps[2] == pytest.approx(nesterov_step, rel=1e-6)  # the classifier's kernel, at the unscaled rate
