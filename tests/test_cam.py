import keras
import numpy as np
import pytest
import tensorflow as tf
from recipes import build_network

from cifarcam.explain import cam


def cam_model(seed=0):
    """conv → global average pooling → dense: the architecture the original CAM was defined on."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3))
    features = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="features")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    logits = keras.layers.Dense(10, name="logits")(pooled)
    return keras.Model(inputs, keras.layers.Activation("softmax")(logits))


def images(count, seed=0):
    return np.random.default_rng(seed).random((count, 32, 32, 3)).astype("float32")


def test_the_target_layer_is_the_last_feature_map():
    assert cam.last_feature_map_layer(cam_model()).name == "features"
    seed = build_network("study_rgb_cnn", (32, 32, 3), dropout=0.5)
    last_conv = [layer for layer in seed.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    assert cam.last_feature_map_layer(seed) is last_conv
    assert tuple(last_conv.output.shape[1:]) == (4, 4, 256)


def test_gradcam_equals_the_original_cam_on_a_gap_network():
    model, batch = cam_model(), images(3)
    classes = np.array([0, 4, 9])
    features = keras.Model(model.inputs, model.get_layer("features").output).predict(batch, verbose=0)
    dense_weights = model.get_layer("logits").get_weights()[0]
    original = np.maximum(np.einsum("nhwk,kn->nhw", features, dense_weights[:, classes]), 0)
    original /= original.max(axis=(1, 2), keepdims=True)
    assert np.allclose(cam.class_activation_maps(model, batch, classes), original, atol=1e-4)


def test_a_batched_call_equals_single_image_calls_and_classes_differ():
    model, batch = cam_model(), images(4)
    classes = np.array([1, 2, 3, 1])
    batched = cam.class_activation_maps(model, batch, classes)
    singles = np.concatenate([cam.class_activation_maps(model, batch[i : i + 1], classes[i : i + 1]) for i in range(4)])
    assert np.allclose(batched, singles, atol=1e-6)
    other = cam.class_activation_maps(model, batch[:1], np.array([7]))
    assert not np.allclose(batched[0], other[0], atol=1e-3)


def test_maps_are_in_unit_range_at_input_resolution_for_pooled_networks():
    model = build_network("study_rgb_cnn", (32, 32, 3), dropout=0.5)
    maps = cam.class_activation_maps(model, images(2), np.array([3, 5]))
    assert maps.shape == (2, 32, 32)
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


def test_an_all_zero_map_gives_zeros_not_nan():
    model = cam_model()
    conv = model.get_layer("features")
    conv.set_weights([np.zeros_like(w) for w in conv.get_weights()])
    maps = cam.class_activation_maps(model, images(2), np.array([0, 1]))
    assert np.array_equal(maps, np.zeros_like(maps))


@pytest.mark.parametrize("channels", [1, 3])
def test_overlay_is_rgb_uint8_of_the_image_size(channels):
    image = np.full((32, 32, channels), 0.5, np.float32)
    heatmap = np.zeros((32, 32), np.float32)
    heatmap[:16] = 1.0
    blended = cam.overlay(image, heatmap)
    assert blended.shape == (32, 32, 3) and blended.dtype == np.uint8
    assert not np.array_equal(blended[0, 0], blended[31, 0])


def test_gradcam_plus_plus_is_batched_in_range_and_differs_from_gradcam():
    model, batch = cam_model(), images(3)
    classes = np.array([2, 5, 8])
    plus = cam.class_activation_maps(model, batch, classes, method="gradcam++")
    singles = np.concatenate(
        [cam.class_activation_maps(model, batch[i : i + 1], classes[i : i + 1], "gradcam++") for i in range(3)]
    )
    assert np.allclose(plus, singles, atol=1e-6)
    assert plus.min() >= 0 and plus.max() <= 1 and np.isfinite(plus).all()
    assert not np.allclose(plus, cam.class_activation_maps(model, batch, classes), atol=1e-3)


def test_an_unknown_method_names_the_choices():
    with pytest.raises(ValueError, match="gradcam, gradcam\\+\\+"):
        cam.class_activation_maps(cam_model(), images(1), np.array([0]), method="lime")


def test_upsampling_is_bilinear_with_half_pixel_centres():
    coarse = np.random.default_rng(0).random((2, 4, 4)).astype("float32")
    expected = tf.image.resize(coarse[..., None], (32, 32), method="bilinear").numpy()[..., 0]  # half-pixel centres
    assert np.allclose(cam.upsample(coarse, (32, 32)), expected, atol=1e-5)
