import keras
import numpy as np
import pytest
from recipes import build_network

from cifarcam.core import choices
from cifarcam.core.errors import PipelineError
from cifarcam.explain import geometry, methods
from cifarcam.training import models


@pytest.mark.parametrize("arch, channels", [("study_gray_cnn", 1), ("study_rgb_cnn", 3)])
def test_the_study_networks_give_class_probabilities_from_a_logits_layer(arch, channels):
    model = build_network(arch, (32, 32, channels), dropout=0.5)
    probabilities = model.predict(np.random.default_rng(0).random((4, 32, 32, channels)), verbose=0)
    assert probabilities.shape == (4, 10)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert model.get_layer("logits").units == 10


def test_rgb_network_has_the_studys_widths_two_convolutions_each():
    model = build_network("study_rgb_cnn", (32, 32, 3), dropout=0.5)
    widths = [layer.filters for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    assert widths == [32, 32, 64, 64, 128, 128, 256, 256]


def test_resnet_stages_pool_then_add_a_residual_branch_and_are_sized_by_params():
    model = build_network("resnet", (32, 32, 1), dropout=0.0, widths=[16, 32, 48], depth=2, batchnorm_momentum=0.8)
    assert [model.get_layer(f"stage{i}_conv").filters for i in (1, 2, 3)] == [16, 32, 48]
    assert tuple(model.get_layer("stage3_res2").output.shape[1:]) == (4, 4, 48)
    assert all(layer.momentum == 0.8 for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert geometry.blocks(model)["block3"].name == "stage3_res2"  # the maps look at the last residual sum


@pytest.mark.parametrize("activation", choices.ACTIVATIONS)
def test_the_resnet_uses_the_chosen_activation_after_every_batch_normalization(activation):
    model = build_network("resnet", (32, 32, 3), dropout=0.0, widths=[8, 8, 8], activation=activation)
    after_bn = [
        model.layers[i + 1]
        for i, layer in enumerate(model.layers)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(after_bn) == 7  # the stem, and a stage convolution and one residual convolution per stage
    assert {layer.activation.__name__ for layer in after_bn} == {activation}


def test_grad_cam_reads_a_mixed_precision_resnet():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_network("resnet", (32, 32, 3), dropout=0.0, widths=[8, 8, 8])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    maps = methods.attribution_maps(
        model, np.random.default_rng(2).random((2, 32, 32, 3)).astype("float32"), np.array([1, 2]), "gradcam"
    )
    assert maps.shape == (2, 32, 32) and np.isfinite(maps).all()


def test_an_unknown_architecture_names_the_choices():
    with pytest.raises(ValueError, match="study_rgb_cnn"):
        build_network("resnet1000", (32, 32, 3), dropout=0.5)


def test_a_saved_model_loads_back_with_the_same_predictions(tmp_path):
    model = build_network("study_gray_cnn", (32, 32, 1), dropout=0.5)
    model.save(tmp_path / "gray.keras")
    images = np.random.default_rng(1).random((3, 32, 32, 1)).astype("float32")
    loaded = models.load(tmp_path / "gray.keras")
    assert np.allclose(model.predict(images, verbose=0), loaded.predict(images, verbose=0), atol=1e-6)


def test_a_model_file_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    inputs = keras.Input((32, 32, 3))
    touches_marker = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")
    hidden = keras.layers.Lambda(touches_marker)(inputs)
    logits = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(hidden))
    keras.Model(inputs, logits).save(tmp_path / "crafted.keras")
    marker.unlink()  # building the model ran the function once
    with pytest.raises(PipelineError, match="Lambda") as error:
        models.load(tmp_path / "crafted.keras")
    assert "\n" not in str(error.value) and not marker.exists()


@pytest.mark.parametrize("content", [None, b"", b"not a zip", b"PK\x03\x04truncated"])
def test_a_missing_or_unreadable_model_is_one_line(tmp_path, content):
    path = tmp_path / "rgb.keras"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(PipelineError, match="rgb.keras") as error:
        models.load(path)
    assert "\n" not in str(error.value)


def test_airbench_whitens_then_pools_three_groups_to_3x3_with_scale_free_bn_and_scaled_logits():
    model = build_network(
        "airbench", (32, 32, 1), dropout=0.0, widths=[16, 32, 48], batchnorm_momentum=0.6, activation="gelu"
    )
    assert tuple(model.get_layer("whiten").output.shape[1:]) == (31, 31, 8)  # 2x2 patches of one channel, both signs
    assert [tuple(model.get_layer(f"group{i}_2_act").output.shape[1:]) for i in (1, 2, 3)] == [
        (15, 15, 16),
        (7, 7, 32),
        (3, 3, 48),
    ]
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 6 and all(layer.momentum == 0.6 and not layer.scale for layer in norms)
    assert model.get_layer("logit_scale").scale == 1 / 9 and not model.get_layer("logits").use_bias
    assert [layer.name for layer in geometry.blocks(model).values()] == [f"group{i}_2_act" for i in (1, 2, 3)]


def test_airbench_convolutions_start_as_the_identity_on_their_input_channels():
    model = build_network("airbench", (32, 32, 3), dropout=0.0, widths=[16, 32, 32])
    widening = keras.ops.convert_to_numpy(model.get_layer("group2_conv1").kernel)  # 16 -> 32 channels
    assert np.array_equal(
        widening[..., :16],
        np.eye(16)[None, None] * (np.arange(3)[:, None, None, None] == 1) * (np.arange(3)[None, :, None, None] == 1),
    )
    assert np.abs(widening[..., 16:]).max() > 0  # the other filters keep their random start
    image = np.random.default_rng(0).random((1, 7, 7, 32)).astype("float32")
    square = model.get_layer("group3_conv2")  # 32 -> 32: the identity as a whole
    assert np.allclose(keras.ops.convert_to_numpy(square(image)), image, atol=1e-6)


def test_airbench_classifier_and_convolutions_start_as_torchs_default_uniform_in_one_over_root_fan_in():
    keras.utils.set_random_seed(0)
    model = build_network("airbench", (32, 32, 3), dropout=0.0, widths=[16, 32, 64])
    for name, fan_in, first_random in [("logits", 64, 0), ("group2_conv1", 9 * 16, 16), ("group3_conv1", 9 * 32, 32)]:
        random = keras.ops.convert_to_numpy(model.get_layer(name).kernel)[
            ..., first_random:
        ]  # beside the dirac filters
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(random).max() <= bound and np.abs(random).max() > 0.97 * bound
        assert random.std() == pytest.approx(bound / np.sqrt(3), rel=0.1)  # uniform, not Glorot's scale
