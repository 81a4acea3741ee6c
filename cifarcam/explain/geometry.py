"""Where a feature map's cells sit on the image, and which feature maps the explanations look at.

A cell of a layer's map is drawn at the centre of its receptive field. Unpadded convolutions and
pools that drop an odd last row shift those centres: airbench's 3x3 cells sit at 4, 12 and 20 px
of a 32 px image, where a plain resize of the map would draw them at 4.8, 15.5 and 26.2. So the
centres are worked out layer by layer from each convolution's and pool's kernel, stride and
padding, and a map is placed by linear interpolation between them.
"""

import numpy as np

from cifarcam.core.backend import keras
from cifarcam.core.errors import PipelineError

RESAMPLING = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
SKIPPED = (keras.layers.InputLayer, keras.layers.Dropout, *RESAMPLING)


def blocks(model):
    """{"block1": layer, ...}: the end of each block after the first pooling, shallow to deep.

    A block is the run of layers at one resolution; its end is the last of them that is a feature
    map after its nonlinearity (an activation, a batch norm, a residual sum, or a convolution with
    its own activation), not a linear convolution that feeds the next pool. For airbench94 these are
    group1_2_act (15x15), group2_2_act (7x7) and group3_2_act (3x3); the ResNet's and the study
    CNNs' are their stages' last maps at 16x16, 8x8 and 4x4.
    """
    ends, pooled = {}, False
    for layer in model.layers:
        pooled = pooled or isinstance(layer, RESAMPLING)
        if not pooled or isinstance(layer, SKIPPED) or len(layer.output.shape) != 4 or _linear_convolution(layer):
            continue
        ends[tuple(layer.output.shape[1:3])] = layer  # dicts keep first-insertion order: shallow to deep
    if not ends:
        raise ValueError(f"model {model.name} has no feature map after a pooling layer for the maps to look at")
    return {f"block{i}": layer for i, layer in enumerate(ends.values(), 1)}


def block(model, name):
    """One of `blocks(model)` by name; an unknown name is one line listing the model's blocks."""
    found = blocks(model)
    if name not in found:
        raise PipelineError(f"unknown layer '{name}' for {model.name}: choose one of {', '.join(found)}")
    return found[name]


def resolution(layer):
    """'15x15': the size of a layer's map, as the report names it."""
    height, width = layer.output.shape[1:3]
    return f"{height}x{width}"


def _linear_convolution(layer):
    activation = getattr(layer, "activation", None)
    return isinstance(layer, keras.layers.Conv2D) and getattr(activation, "__name__", "linear") == "linear"


def cell_centres(model, layer):
    """(ys, xs): the centres of `layer`'s cells in input pixels (pixel i's centre is i), per axis."""
    places = {}  # id of a tensor -> ((offset_y, step_y), (offset_x, step_x)): cell j's centre is offset + step * j
    for current in model.layers:
        inputs = current.input if isinstance(current.input, list) else [current.input]
        if isinstance(current, keras.layers.InputLayer):
            place = ((0.0, 1.0), (0.0, 1.0))
        else:
            place = _through(current, places[id(inputs[0])], inputs[0].shape)
        places[id(current.output)] = place
        if current is layer:
            return tuple(
                offset + step * np.arange(size)
                for (offset, step), size in zip(place, layer.output.shape[1:3], strict=True)
            )
    raise ValueError(f"layer {layer.name} is not part of model {model.name}")


def _through(layer, place, input_shape):
    """A layer's effect on where its cells sit: a window of some size, stride and padding, or none."""
    output_shape = layer.output.shape
    if len(output_shape) != 4 or len(input_shape) != 4:
        return place
    window, strides, padding, dilation = _window(layer, input_shape)
    moved = []
    for axis, (offset, step) in enumerate(place):
        size_in, size_out = input_shape[axis + 1], output_shape[axis + 1]
        span = dilation[axis] * (window[axis] - 1) + 1
        before = 0 if padding == "valid" else max((size_out - 1) * strides[axis] + span - size_in, 0) // 2
        moved.append((offset + step * ((span - 1) / 2 - before), step * strides[axis]))
    return tuple(moved)


def _window(layer, input_shape):
    """(window, strides, padding, dilation) of a layer that slides a window; size-keeping layers get a 1x1 one."""
    if hasattr(layer, "kernel_size"):
        return layer.kernel_size, layer.strides, layer.padding, layer.dilation_rate
    if hasattr(layer, "pool_size"):
        return layer.pool_size, layer.strides, layer.padding, (1, 1)
    kernel = getattr(layer, "kernel", None)
    if kernel is not None and len(kernel.shape) == 4:  # a custom 'valid' convolution: airbench's patch whitening
        return tuple(kernel.shape[:2]), (1, 1), "valid", (1, 1)
    if tuple(input_shape[1:3]) != tuple(layer.output.shape[1:3]):
        raise ValueError(f"cannot tell where the cells of layer {layer.name} ({type(layer).__name__}) sit")
    return (1, 1), (1, 1), "valid", (1, 1)


def place(maps, centres, size):
    """(N, h, w) cell maps drawn at input resolution `size`: linear between cell centres, flat beyond them.

    centres=None: the maps already have one value per pixel.
    """
    maps = np.asarray(maps, np.float32)
    if centres is None:
        return maps
    rows, columns = (_interpolation(centre, length) for centre, length in zip(centres, size, strict=True))
    return np.einsum("Hh,nhw,Ww->nHW", rows, maps, columns).astype(np.float32)


def _interpolation(centres, length):
    """(length, cells) weights: each pixel's linear interpolation between the two nearest cell centres."""
    eye = np.eye(len(centres), dtype=np.float32)
    return np.stack([np.interp(np.arange(length), centres, row) for row in eye], axis=1)
