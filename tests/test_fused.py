import keras
import numpy as np
import pytest
from recipes import build_network

from cifarcam.training import fused


def trained_step(layer, images, upstream):
    """One training call of `layer`: its outputs, the gradients of its inputs and BN's shift, its moving statistics."""
    import tensorflow as tf

    images = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(images)
        outputs = layer(images, training=True)
        loss = tf.reduce_sum(tf.cast(outputs, tf.float32) * upstream)
    input_gradient, shift_gradient = tape.gradient(loss, [images, layer.beta])
    arrays = outputs, input_gradient, shift_gradient, layer.moving_mean, layer.moving_variance
    return [keras.ops.convert_to_numpy(array).astype(np.float32) for array in arrays]


@pytest.mark.parametrize("policy, tolerance", [("float32", 1e-5), ("mixed_bfloat16", 1e-2)])
@pytest.mark.parametrize("scale", [True, False])
def test_the_fused_batch_normalization_trains_as_keras_does(policy, tolerance, scale):
    rng = np.random.default_rng(0)
    images = rng.normal(2.0, 3.0, (64, 8, 8, 16)).astype(np.float32)
    upstream = rng.normal(size=images.shape).astype(np.float32)
    keras.mixed_precision.set_global_policy(policy)
    try:
        ours, theirs = (
            kind(momentum=0.6, scale=scale, epsilon=1e-12)
            for kind in (fused.BatchNormalization, keras.layers.BatchNormalization)
        )
        for layer in (ours, theirs):
            layer.build(images.shape)
            layer.beta.assign(np.linspace(-1, 1, 16))
        ours_step, theirs_step = trained_step(ours, images, upstream), trained_step(theirs, images, upstream)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for name, mine, keras_own in zip(
        ("outputs", "input gradient", "shift gradient", "moving mean"), ours_step, theirs_step, strict=False
    ):  # the moving variance: below
        np.testing.assert_allclose(
            mine, keras_own, rtol=tolerance, atol=tolerance * np.abs(keras_own).max(), err_msg=name
        )
    count = images.size // images.shape[-1]  # the fused kernel's moving variance takes the unbiased batch variance
    unbiased = theirs_step[4] + (1 - 0.6) * (count / (count - 1) - 1) * images.var(axis=(0, 1, 2))
    np.testing.assert_allclose(ours_step[4], unbiased, rtol=1e-4 if policy == "float32" else 1e-2)
    assert ours_step[0].dtype == np.float32 and not np.array_equal(ours_step[3], np.zeros(16))


def test_outside_training_the_fused_batch_normalization_is_keras_own():
    rng = np.random.default_rng(1)
    ours, theirs = fused.BatchNormalization(), keras.layers.BatchNormalization()
    for layer in (ours, theirs):
        layer.build((None, 4, 4, 3))
        layer.set_weights([np.full(3, 2.0), np.ones(3), np.arange(3.0), np.full(3, 4.0)])
    images = rng.normal(size=(5, 4, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours(images)), keras.ops.convert_to_numpy(theirs(images)))


@pytest.mark.parametrize(
    "dtype, tolerance", [("float32", 1e-6), ("bfloat16", 2**-8)]
)  # bfloat16: within half a unit of the last place
def test_the_fused_gelu_and_its_gradient_are_the_exact_gelus_rounded_once(dtype, tolerance):
    import tensorflow as tf

    values = tf.cast(tf.linspace(-6.0, 6.0, 1001), dtype)
    exact = tf.cast(values, "float32")  # Keras's own GELU, in float32 on the same inputs
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([values, exact])
        ours, theirs = fused.gelu(values), keras.activations.gelu(exact, approximate=False)
    assert ours.dtype == values.dtype
    for mine, keras_own in ((ours, theirs), (tape.gradient(ours, values), tape.gradient(theirs, exact))):
        np.testing.assert_allclose(np.float32(mine), np.float32(keras_own), rtol=tolerance, atol=1e-6)


def test_a_network_of_fused_layers_saves_and_loads_in_safe_mode(tmp_path):
    network = build_network("airbench", (32, 32, 3), dropout=0.0, widths=[8, 8, 8], activation="gelu")
    assert {type(layer) for layer in network.layers if "_bn" in layer.name} == {fused.BatchNormalization}
    network.save(tmp_path / "net.keras")
    loaded = keras.models.load_model(tmp_path / "net.keras", safe_mode=True)
    images = np.random.default_rng(2).random((3, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), network.predict(images, verbose=0), atol=1e-6)
    assert loaded.get_layer("group3_2_act").activation is fused.gelu


@pytest.mark.parametrize("side", [3, 7, 8])  # 8: over SMALL_MAP, Keras's own convolution
def test_the_small_map_convolution_and_its_gradients_are_keras_convolutions(side):
    import tensorflow as tf

    rng = np.random.default_rng(3)
    images = tf.constant(rng.normal(size=(4, side, side, 5)).astype(np.float32))
    upstream = tf.constant(rng.normal(size=(4, side, side, 6)).astype(np.float32))
    ours, theirs = (
        fused.Conv2D(6, 3, padding="same", use_bias=False),
        keras.layers.Conv2D(6, 3, padding="same", use_bias=False),
    )
    for layer in (ours, theirs):
        layer.build(images.shape)
    theirs.kernel.assign(ours.kernel)
    results = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_sum(layer(images) * upstream)
        results.append([np.asarray(t) for t in (layer(images), *tape.gradient(loss, [images, layer.kernel]))])
    for name, mine, keras_own in zip(("outputs", "image gradient", "kernel gradient"), *results, strict=True):
        np.testing.assert_allclose(mine, keras_own, rtol=1e-5, atol=1e-4, err_msg=name)
