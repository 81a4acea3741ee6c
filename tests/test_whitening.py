import keras
import numpy as np
import pytest

from cifarcam.whitening import PatchWhitening, whitening_kernel


def correlated_images(channels, count=400, seed=0):
    """Smooth images (neighbouring pixels and channels correlated) that are not centred at 0."""
    rng = np.random.default_rng(seed)
    noise = rng.random((count, 33, 33, 1)) * 0.5 + rng.random((count, 33, 33, channels)) * 0.2
    return (0.3 + (noise[:, 1:, 1:] + noise[:, :-1, :-1]) / 2).astype(np.float32)


@pytest.mark.parametrize("channels", [1, 3])
def test_the_whitened_patches_are_centred_and_decorrelated_with_unit_variance(channels):
    images = correlated_images(channels)
    layer = PatchWhitening()
    layer.build(images.shape)
    layer.adapt(images)
    outputs = keras.ops.convert_to_numpy(layer(images)).reshape(-1, 8 * channels).astype(np.float64)
    half = 4 * channels
    assert np.allclose(outputs[:, half:], -outputs[:, :half], atol=1e-4)  # each filter and its negative
    assert np.abs(outputs.mean(axis=0)).max() < 1e-3
    covariance = np.cov(outputs[:, :half].T)
    assert np.abs(covariance - np.diag(np.diag(covariance))).max() < 1e-3
    assert np.allclose(np.diag(covariance), 1, atol=0.05)  # these images' variances all exceed the epsilon


def test_only_the_bias_trains_and_the_layer_computes_in_float32_under_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((32, 32, 3))
        layer = PatchWhitening(dtype="float32")
        model = keras.Model(inputs, layer(inputs))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert [weight.name for weight in layer.trainable_weights] == ["bias"]
    assert [weight.name for weight in layer.non_trainable_weights] == ["kernel"]
    assert model.output.dtype == "float32"


def test_the_kernel_maps_each_patch_like_the_matrix_it_came_from():
    images = correlated_images(3, count=50)
    kernel, bias = whitening_kernel(images)
    layer = PatchWhitening()
    layer.build(images.shape)
    layer.adapt(images)
    patch = images[:1, 5:7, 9:11].reshape(1, -1)  # rows, then columns, then channels
    expected = patch @ kernel.reshape(12, 24) + bias
    assert np.allclose(keras.ops.convert_to_numpy(layer(images[:1]))[0, 5, 9], expected[0], atol=1e-3)


def test_images_of_one_value_give_a_clear_error_instead_of_nan_filters():
    with pytest.raises(ValueError, match="images that vary"):
        whitening_kernel(np.full((10, 32, 32, 3), 0.5, np.float32))
