"""Each attribution method against an independent computation: its paper's formula on gradients known
in closed form, a plain loop of model calls, or a property the method guarantees."""

import keras
import numpy as np
import pytest
from recipes import build_network

from cifarcam.core.choices import EXPLANATION_METHODS
from cifarcam.explain import geometry, methods

GRADIENT_CAMS = ("gradcam", "gradcam++", "hirescam", "xgradcam", "layercam")


def pooled_network(pooling="average", shape=(8, 8, 3), activation="softplus", downsample=False, seed=0):
    """conv → global pooling → dense logits → softmax; the gradient of a logit with respect to the
    convolution's map `features` is known: W[k, c] / (h w) everywhere (average) or at each channel's
    argmax (max). softplus keeps the map positive and its maxima untied. `downsample`: a pool before."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs) if downsample else inputs
    x = keras.layers.MaxPooling2D()(x) if downsample else x
    features = keras.layers.Conv2D(4, 3, padding="same", activation=activation, name="features")(x)
    pool = keras.layers.GlobalAveragePooling2D() if pooling == "average" else keras.layers.GlobalMaxPooling2D()
    logits = keras.layers.Dense(10, name="logits")(pool(features))
    return keras.Model(inputs, keras.layers.Activation("softmax")(logits))


def linear_network(shape=(4, 4, 2), seed=0):
    """flatten → dense logits: the gradient of logit c with respect to the image is W[:, c] everywhere."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    logits = keras.layers.Dense(10, name="logits")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Activation("softmax")(logits))


def images(count, shape=(8, 8, 3), seed=0):
    return np.random.default_rng(seed).random((count, *shape)).astype("float32")


def features_of(model, batch):
    return keras.Model(model.inputs[0], model.get_layer("features").output).predict(batch, verbose=0)


def logits_of(model, batch):
    return keras.Model(model.inputs[0], model.get_layer("logits").output).predict(batch, verbose=0)


def analytic_gradients(model, features, classes, pooling):
    """d logit[c] / d features for a pooled_network, from the dense weights alone."""
    weights = model.get_layer("logits").get_weights()[0][:, classes].T[:, None, None, :]  # (N, 1, 1, K)
    n, height, width, channels = features.shape
    if pooling == "average":
        return np.broadcast_to(weights / (height * width), features.shape)
    flat = features.reshape(n, -1, channels)
    at_max = np.zeros_like(flat)
    np.put_along_axis(at_max, flat.argmax(axis=1)[:, None], 1.0, axis=1)
    return at_max.reshape(features.shape) * weights


def peak_scaled(maps):
    maps = np.maximum(maps, 0)
    peaks = maps.max(axis=(1, 2), keepdims=True)
    return maps / np.where(peaks > 0, peaks, 1)


def paper_maps(a, g):
    """Each gradient method's map from its paper's formula, given the activations a and gradients g."""
    totals = a.sum(axis=(1, 2), keepdims=True)
    with np.errstate(invalid="ignore"):  # Chattopadhay et al., eq. 19; 0/0 where max pooling sends no gradient
        alphas = np.where(g != 0, g**2 / (2 * g**2 + totals * g**3), 0)
    return {
        "gradcam": (g.mean(axis=(1, 2), keepdims=True) * a).sum(-1),
        "gradcam++": ((alphas * np.maximum(g, 0)).sum(axis=(1, 2), keepdims=True) * a).sum(-1),
        "hirescam": (g * a).sum(-1),
        "xgradcam": ((a / totals * g).sum(axis=(1, 2), keepdims=True) * a).sum(-1),
        "layercam": (np.maximum(g, 0) * a).sum(-1),
    }


def test_the_registry_is_the_choices_split_into_layer_and_pixel_methods():
    assert tuple(methods.METHODS) == EXPLANATION_METHODS
    assert methods.CAM_METHODS + methods.PIXEL_METHODS == EXPLANATION_METHODS
    assert methods.PIXEL_METHODS == ("integrated_gradients", "smoothgrad")


@pytest.mark.parametrize("pooling", ["average", "max"])
def test_gradient_methods_follow_their_papers_on_gradients_known_in_closed_form(pooling):
    model, batch, classes = pooled_network(pooling), images(3), np.array([0, 4, 9])
    features = features_of(model, batch)
    expected = paper_maps(features, analytic_gradients(model, features, classes, pooling))
    signed = methods.cell_maps(model, batch, classes, model.get_layer("features"), GRADIENT_CAMS)
    scaled = methods.cam_maps(model, batch, classes, model.get_layer("features"), GRADIENT_CAMS)  # cells are pixels
    for method in GRADIENT_CAMS:
        assert np.allclose(signed[method], expected[method], rtol=1e-4, atol=1e-6), method
        assert np.allclose(scaled[method], peak_scaled(expected[method]), atol=1e-5), method


@pytest.mark.parametrize("pooling", ["average", "max"])
def test_hirescam_adds_up_to_the_logit_less_the_bias_on_a_pooled_head(pooling):
    model, batch, classes = pooled_network(pooling), images(3), np.array([2, 5, 8])
    signed = methods.cell_maps(model, batch, classes, model.get_layer("features"), ("hirescam",))["hirescam"]
    bias = model.get_layer("logits").get_weights()[1][classes]
    assert np.allclose(signed.sum(axis=(1, 2)), logits_of(model, batch)[np.arange(3), classes] - bias, atol=1e-5)


@pytest.mark.parametrize("sign", [1, -1])
def test_eigencam_of_a_rank_one_map_is_its_centred_spatial_factor_signed_as_the_channel_sum(sign):
    inputs = keras.Input((6, 6, 1))
    rank_one = keras.layers.Conv2D(4, 1, use_bias=False, name="features")  # features[p, k] = image[p] v[k]
    logits = keras.layers.Dense(10, name="logits")(keras.layers.GlobalAveragePooling2D()(rank_one(inputs)))
    model = keras.Model(inputs, logits)
    rank_one.set_weights([sign * np.array([0.5, 1.0, 2.0, 0.1], np.float32).reshape(1, 1, 1, 4)])
    batch = images(2, (6, 6, 1))
    spatial = batch[..., 0] - batch[..., 0].mean(axis=(1, 2), keepdims=True)
    maps = methods.cam_maps(model, batch, np.array([0, 1]), rank_one, ("eigencam",))["eigencam"]
    assert np.allclose(maps, peak_scaled(sign * spatial), atol=1e-5)  # the sum over channels is sign * image * |v|_1


def test_scorecam_equals_a_loop_of_one_masked_image_per_model_call():
    model, batch, classes = pooled_network(downsample=True), images(2), np.array([3, 6])
    layer = model.get_layer("features")  # 4x4 cells on an 8x8 image: the masks are placed
    features, centres = features_of(model, batch), geometry.cell_centres(model, layer)
    logits = keras.Model(model.inputs[0], model.get_layer("logits").output)
    expected = []
    for image, cells, target in zip(batch, features, classes, strict=True):
        scores = []
        for channel in range(cells.shape[-1]):
            mask = geometry.place(cells[None, ..., channel], centres, (8, 8))[0]
            mask = (mask - mask.min()) / (mask.max() - mask.min() + 1e-8)
            scores.append(float(logits(image[None] * mask[None, ..., None])[0, target]))
        weights = np.exp(scores) / np.exp(scores).sum()
        expected.append((cells * weights).sum(-1))
    signed = methods.cell_maps(model, batch, classes, layer, ("scorecam",), batch_size=3)["scorecam"]
    assert np.allclose(signed, expected, rtol=1e-4, atol=1e-6)


def test_integrated_gradients_of_a_linear_model_are_the_image_times_the_weights():
    model, batch, classes = linear_network(), images(2, (4, 4, 2)), np.array([1, 7])
    weights = model.get_layer("logits").get_weights()[0][:, classes].T.reshape(batch.shape)
    assert np.allclose(methods.integrated_gradients(model, batch, classes, steps=3), batch * weights, atol=1e-6)
    maps = methods.attribution_maps(model, batch, classes, "integrated_gradients")
    assert np.allclose(maps, peak_scaled((batch * weights).sum(-1)), atol=1e-5)


def test_integrated_gradients_are_complete_their_sum_is_the_logit_less_the_black_images():
    model, batch, classes = pooled_network(), images(3), np.array([0, 5, 9])
    attributions = methods.integrated_gradients(model, batch, classes, steps=64, batch_size=100)
    black = logits_of(model, np.zeros_like(batch))[np.arange(3), classes]
    gain = logits_of(model, batch)[np.arange(3), classes] - black
    assert np.allclose(attributions.sum(axis=(1, 2, 3)), gain, rtol=1e-3, atol=1e-4)
    assert np.abs(gain).min() > 0.01  # a real difference to account for


def test_smoothgrad_without_noise_is_the_gradient_which_matches_finite_differences():
    model, batch, classes = pooled_network(), images(2), np.array([1, 8])
    gradients = methods.smoothgrad(model, batch, classes, samples=2, noise=0.0)
    directions = images(2, seed=1) - 0.5
    step = 1e-2
    ahead, behind = (logits_of(model, batch + s * directions)[np.arange(2), classes] for s in (step, -step))
    assert np.allclose((gradients * directions).sum(axis=(1, 2, 3)), (ahead - behind) / (2 * step), rtol=1e-2)


def test_smoothgrad_is_seeded_and_its_map_is_the_largest_gradient_magnitude_over_channels():
    model, batch, classes = pooled_network(), images(2), np.array([1, 8])
    first, again = (methods.attribution_maps(model, batch, classes, "smoothgrad", seed=3) for _ in range(2))
    assert np.array_equal(first, again)
    assert not np.allclose(first, methods.attribution_maps(model, batch, classes, "smoothgrad", seed=4), atol=1e-4)
    linear, flat = linear_network(), images(2, (4, 4, 2))  # on a linear model every noisy copy has the same gradient
    weights = linear.get_layer("logits").get_weights()[0][:, classes].T.reshape(flat.shape)
    maps = methods.attribution_maps(linear, flat, classes, "smoothgrad")
    assert np.allclose(maps, peak_scaled(np.abs(weights).max(-1)), atol=1e-5)


def test_a_batched_call_equals_single_image_calls_and_other_classes_give_other_maps():
    model, batch, classes = pooled_network(downsample=True), images(3), np.array([1, 2, 1])
    layer = model.get_layer("features")
    for method in EXPLANATION_METHODS:
        batched = methods.attribution_maps(model, batch, classes, method, layer, batch_size=2)
        singles = [
            methods.attribution_maps(model, batch[i : i + 1], classes[i : i + 1], method, layer) for i in range(3)
        ]
        assert np.allclose(batched, np.concatenate(singles), atol=1e-5), method
    gradcam = methods.attribution_maps(model, batch[:1], np.array([7]), "gradcam", layer)
    assert not np.allclose(gradcam[0], methods.attribution_maps(model, batch[:1], classes[:1], "gradcam", layer)[0])


def scaled_maps_are_valid(maps, count, size):
    peaks = maps.max(axis=(1, 2))
    assert maps.shape == (count, *size) and maps.dtype == np.float32 and np.isfinite(maps).all()
    assert maps.min() >= 0 and np.all(np.isclose(peaks, 1) | (peaks == 0))


@pytest.mark.parametrize(
    "arch, shape, widths",
    [
        ("airbench", (32, 32, 3), [8, 16, 16]),
        ("resnet", (32, 32, 3), [8, 16, 16]),
        ("study_gray_cnn", (32, 32, 1), [4, 8, 8, 8]),
    ],
)
def test_every_method_gives_unit_range_maps_at_the_input_resolution_at_every_block(arch, shape, widths):
    model, batch, classes = build_network(arch, shape, widths=widths), images(2, shape), np.array([3, 5])
    if arch == "airbench":  # its whitening is zero until set from images
        model.get_layer("whiten").adapt(images(20, shape, seed=1))
    for layer in geometry.blocks(model).values():
        for maps in methods.cam_maps(model, batch, classes, layer).values():
            scaled_maps_are_valid(maps, 2, shape[:2])
    for method in methods.PIXEL_METHODS:
        scaled_maps_are_valid(methods.attribution_maps(model, batch, classes, method), 2, shape[:2])
    last = list(geometry.blocks(model).values())[-1]
    default = methods.attribution_maps(model, batch, classes, "layercam")  # layer None: the last block
    assert np.array_equal(default, methods.cam_maps(model, batch, classes, last, ("layercam",))["layercam"])


def test_a_bfloat16_model_gives_float32_maps():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_network("resnet", (16, 16, 3), widths=[4, 8, 8])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for method in EXPLANATION_METHODS:
        scaled_maps_are_valid(
            methods.attribution_maps(model, images(2, (16, 16, 3)), np.array([0, 1]), method), 2, (16, 16)
        )


def test_a_network_that_sees_nothing_gives_zero_maps_not_nan():
    model = pooled_network(activation="relu", downsample=True)
    conv = model.get_layer("features")
    conv.set_weights([np.zeros_like(w) for w in conv.get_weights()])
    for method in EXPLANATION_METHODS:
        maps = methods.attribution_maps(model, images(2), np.array([0, 1]), method, conv)
        assert np.array_equal(maps, np.zeros_like(maps)), method


def test_an_unknown_method_names_the_known_ones():
    model = pooled_network()
    with pytest.raises(ValueError, match="unknown attribution method 'lime': choose one of gradcam, gradcam\\+\\+, "):
        methods.attribution_maps(model, images(1), np.array([0]), "lime")
    with pytest.raises(ValueError, match="unknown CAM method 'smoothgrad': choose one of gradcam, .*, scorecam$"):
        methods.cam_maps(model, images(1), np.array([0]), model.get_layer("features"), ("smoothgrad",))
