import keras
import numpy as np
import pytest

from cifarcam.training.layers import EPSILON, PatchWhitening, whitening_parameters


def correlated_images(channels, count=400, seed=0):
    """Smooth images (neighbouring pixels and channels correlated) that are not centred at 0."""
    rng = np.random.default_rng(seed)
    noise = rng.random((count, 33, 33, 1)) * 0.5 + rng.random((count, 33, 33, channels)) * 0.2
    return (0.3 + (noise[:, 1:, 1:] + noise[:, :-1, :-1]) / 2).astype(np.float32)


def airbench_whitening_outputs(standardized):
    """airbench94's `init_whitening_conv` in NumPy, applied to its patches: (patches, 2 x patch size).

    Its patches are flattened channel-first, its second moment is uncentred and its bias is zero.
    """
    count, height, width, channels = standardized.shape
    nchw = standardized.transpose(0, 3, 1, 2)
    patches = np.stack([nchw[:, :, r : r + 2, c : c + 2] for r in range(height - 1) for c in range(width - 1)], axis=1)
    flat = patches.reshape(-1, channels * 4).astype(np.float64)  # (patches in row-major position order, c*h*w)
    eigenvalues, eigenvectors = np.linalg.eigh(flat.T @ flat / len(flat))
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors.T[::-1]
    scaled = eigenvectors / np.sqrt(eigenvalues + EPSILON)[:, None]
    return flat @ np.concatenate([scaled, -scaled]).T


@pytest.mark.parametrize("channels", [1, 3])
def test_the_layer_is_airbenchs_uncentred_whitening_of_per_channel_standardized_images(channels):
    images = correlated_images(channels, count=100)
    layer = PatchWhitening()
    layer.build(images.shape)
    layer.adapt(images)
    mean, std = images.mean(axis=(0, 1, 2)), images.std(axis=(0, 1, 2))
    assert np.allclose(keras.ops.convert_to_numpy(layer.mean), mean) and np.allclose(
        keras.ops.convert_to_numpy(layer.std), std
    )
    assert not np.any(
        keras.ops.convert_to_numpy(layer.bias)
    )  # airbench's bias starts at zero, not at minus the mean patch
    outputs = keras.ops.convert_to_numpy(layer(images)).reshape(-1, 8 * channels).astype(np.float64)
    expected = airbench_whitening_outputs((images - mean) / std)
    signs = np.sign(np.sum(outputs * expected, axis=0))  # an eigenvector's sign is arbitrary
    assert np.allclose(outputs, expected * signs, atol=2e-3 * np.abs(expected).max())
    half = 4 * channels
    covariance = outputs[:, :half].T @ outputs[:, :half] / len(outputs)  # uncentred, as whitened
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
    assert [weight.name for weight in layer.non_trainable_weights] == ["mean", "std", "kernel"]
    assert model.output.dtype == "float32"


def test_the_kernel_maps_each_standardized_patch_like_the_matrix_it_came_from():
    images = correlated_images(3, count=50)
    mean, std, kernel = whitening_parameters(images)
    layer = PatchWhitening()
    layer.build(images.shape)
    layer.adapt(images)
    patch = ((images[:1, 5:7, 9:11] - mean) / std).reshape(1, -1)  # rows, then columns, then channels
    expected = patch @ kernel.reshape(12, 24)
    assert np.allclose(keras.ops.convert_to_numpy(layer(images[:1]))[0, 5, 9], expected[0], atol=1e-3)


def test_images_of_one_value_give_a_clear_error_instead_of_nan_filters():
    with pytest.raises(ValueError, match="images that vary"):
        whitening_parameters(np.full((10, 32, 32, 3), 0.5, np.float32))
