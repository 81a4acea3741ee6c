"""The networks: the study's two CNNs, rebuilt from its description, a ResNet and airbench94's network.

All end in a linear `logits` layer followed by a separate softmax, so that Grad-CAM can take
gradients of the pre-softmax class score (the softmax saturates and flattens the gradients).
"""

from pathlib import Path

import numpy as np

from cifarcam.core.backend import keras, layers
from cifarcam.core.errors import PipelineError
from cifarcam.core.names import CLASSES
from cifarcam.training import fused, precision
from cifarcam.training.layers import PatchWhitening

NUM_CLASSES = len(CLASSES)
ACTIVATIONS = {"relu": "relu", "gelu": fused.gelu}
# PyTorch's default for Conv2d and Linear, which airbench keeps: kaiming_uniform(a=sqrt(5)), i.e. U(±1/sqrt(fan_in))
TORCH_DEFAULT_INIT = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1 / 3, "mode": "fan_in", "distribution": "uniform"},
}


def study_gray_cnn(input_shape=(32, 32, 1), dropout=0.5, filters=(32, 64, 128, 256)):
    """The study's grayscale CNN: Conv+ReLU+MaxPool stacks, global average pooling, dropout."""
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for width in filters:
        x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    return _classifier_head(inputs, x, "study_gray_cnn")


def study_rgb_cnn(input_shape=(32, 32, 3), dropout=0.5, filters=(32, 64, 128, 256)):
    """The study's RGB CNN: 32→64→128→256 filters, two same-padded convolutions per stage."""
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for width in filters:
        x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(dropout / 2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    return _classifier_head(inputs, x, "study_rgb_cnn")


def resnet(
    input_shape=(32, 32, 3), dropout=0.0, widths=(64, 256, 256), depth=1, batchnorm_momentum=0.9, activation="relu"
):
    """A ResNet-style network with batch normalization, shaped like airbench's fast CIFAR-10 nets.

    A 3x3 stem convolution, then per width one stage: convolution, 2x2 max-pool, BN, activation,
    and `depth` residual convolutions (conv, BN, activation, added back). Pooling before BN and
    the activation does those at a quarter of the positions; global max pooling ends it.
    airbench uses GELU; ReLU is cheaper on a CPU, where an exact GELU is an erf per element.
    """
    inputs = keras.Input(input_shape, name="image")
    unit = {"momentum": batchnorm_momentum, "activation": activation}
    x = _conv_bn(inputs, widths[0] // 2, "stem", unit)
    for stage, width in enumerate(widths, 1):
        x = fused.Conv2D(width, 3, padding="same", use_bias=False, name=f"stage{stage}_conv")(x)
        x = layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
        x = _bn_activation(x, f"stage{stage}", unit)
        for block in range(1, depth + 1):
            x = layers.Add(name=f"stage{stage}_res{block}")([x, _conv_bn(x, width, f"stage{stage}_res{block}", unit)])
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dropout(dropout)(x)
    return _classifier_head(inputs, x, "resnet")


def airbench(input_shape=(32, 32, 3), dropout=0.0, widths=(64, 256, 256), batchnorm_momentum=0.6, activation="gelu"):
    """airbench94's network (Jordan 2024), the fastest known to 94% on CIFAR-10.

    A frozen 2x2 patch-whitening convolution (set from the training images by `recipe`), then per
    width a group: conv, 2x2 max-pool, BN, activation, conv, BN, activation. Each convolution
    starts as the identity on its input channels (dirac), BN has no learned scale, and the
    logits are scaled by 1/9 (a lower softmax temperature at the start). The convolutions' other
    filters and the classifier start as PyTorch's, U(±1/sqrt(fan_in)): Keras's Glorot default is
    another scale.
    """
    inputs = keras.Input(input_shape, name="image")
    x = PatchWhitening(name="whiten", dtype="float32")(inputs)  # its large weights cancel: bfloat16 is too coarse
    x = layers.Activation(ACTIVATIONS[activation], name="whiten_act")(x)
    unit = {"momentum": batchnorm_momentum, "activation": activation, "scale": False, "epsilon": 1e-12}
    for group, width in enumerate(widths, 1):
        x = _dirac_conv(x, width, f"group{group}_conv1")
        x = layers.MaxPooling2D(name=f"group{group}_pool")(x)
        x = _bn_activation(x, f"group{group}_1", unit)
        x = _bn_activation(_dirac_conv(x, width, f"group{group}_conv2"), f"group{group}_2", unit)
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Rescaling(1 / 9, name="logit_scale")(x)
    return _classifier_head(inputs, x, "airbench", use_bias=False, kernel_initializer=TORCH_DEFAULT_INIT)


def _dirac_conv(x, width, name):
    conv = fused.Conv2D(width, 3, padding="same", use_bias=False, kernel_initializer=TORCH_DEFAULT_INIT, name=name)
    y = conv(x)
    kernel = keras.ops.convert_to_numpy(conv.kernel)
    identity = min(x.shape[-1], width)
    kernel[..., :identity] = 0
    kernel[1, 1, np.arange(identity), np.arange(identity)] = 1
    conv.kernel.assign(kernel)
    return y


def _conv_bn(x, width, name, unit):
    x = fused.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    return _bn_activation(x, name, unit)


def _bn_activation(x, name, unit):
    norm_options = {key: unit[key] for key in ("scale", "epsilon") if key in unit}
    x = fused.BatchNormalization(momentum=unit["momentum"], name=f"{name}_bn", **norm_options)(x)
    return layers.Activation(ACTIVATIONS[unit["activation"]], name=f"{name}_act")(x)


def _classifier_head(inputs, features, name, use_bias=True, kernel_initializer="glorot_uniform"):
    logits = layers.Dense(
        NUM_CLASSES, use_bias=use_bias, kernel_initializer=kernel_initializer, name="logits", dtype="float32"
    )(features)
    probabilities = layers.Activation("softmax", name="probabilities", dtype="float32")(logits)
    return keras.Model(inputs, probabilities, name=name)


BUILDERS = {"resnet": resnet, "airbench": airbench, "study_gray_cnn": study_gray_cnn, "study_rgb_cnn": study_rgb_cnn}


def build(recipe, input_shape):
    """The network a recipe (a train section) names: `arch`, sized by `widths` (per stage; null: the
    network's own) with its `dropout`, and for the ResNet and airbench94 `batchnorm_momentum`,
    `activation` and (the ResNet) `depth`."""
    arch = recipe["arch"]
    if arch not in BUILDERS:
        raise ValueError(f"unknown architecture '{arch}': choose one of {', '.join(BUILDERS)}")
    options = {"dropout": recipe["dropout"]}
    if arch in ("resnet", "airbench"):
        options |= {"batchnorm_momentum": recipe["batchnorm_momentum"], "activation": recipe["activation"]}
        options |= {"depth": recipe["depth"]} if arch == "resnet" else {}
        options |= {"widths": tuple(recipe["widths"])} if recipe["widths"] else {}
    elif recipe["widths"]:
        options["filters"] = tuple(recipe["widths"])
    return BUILDERS[arch](input_shape=input_shape, **options)


def load(path, cpuinfo=precision.CPUINFO):
    """Load a saved model in Keras's safe mode, which refuses files that would run code.

    A model trained in mixed bfloat16 computes in float32 on a machine without native bfloat16
    (see cifarcam.training.precision): emulated bfloat16 is no faster there, and float32 rounds less.
    """
    if not Path(path).is_file():
        raise PipelineError(f"model {path} not found: train it first (dvc repro) or check the path")
    try:
        model = keras.models.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many types for a bad file; all mean the same to the user
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise PipelineError(f"cannot load model {path}: {reason}") from None
    if precision.resolve("auto", cpuinfo) == "float32" and any(
        layer.compute_dtype == "bfloat16" for layer in model.layers
    ):
        return in_float32(model)
    return model


def in_float32(model):
    """The same network and weights, every layer computing in float32."""

    def float32_layer(layer):
        return layer.__class__.from_config(layer.get_config() | {"dtype": "float32"})

    clone = keras.models.clone_model(model, clone_function=float32_layer)
    clone.set_weights(model.get_weights())
    return clone
