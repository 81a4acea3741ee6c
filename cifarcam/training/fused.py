"""Batch normalization, GELU and small convolutions as TensorFlow trains them fastest on a CPU.

Besides the convolutions, batch normalization and GELU are most of a training step, and Keras 3
writes both as chains of small ops: its BatchNormalization takes the moments, casts to float32
and back and normalizes in about ten ops, and its GELU is an `erfc`, an `exp` and a handful of
products, each a pass over the activations in TensorFlow's slow elementwise bfloat16 kernels.
Here batch normalization trains through TensorFlow's fused kernel (oneDNN's on x86), GELU is one
pass forward and one backward, each compiled by XLA, and a convolution over a small feature map
takes its kernel's gradient as nine matrix products, where oneDNN's own kernel is slowest. The
weights, configurations and arithmetic are Keras's: elsewhere (JAX, inference, a layer these do
not cover) Keras's own code runs.
"""

import functools
import math

from cifarcam.core.backend import keras

SMALL_MAP = 7  # feature maps up to this side get the kernel gradient by matrix products (measured faster up to 7x7)


def _on_tensorflow():
    return keras.backend.backend() == "tensorflow"


@keras.saving.register_keras_serializable(package="cifarcam")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras's BatchNormalization, trained on TensorFlow through the fused kernel (FusedBatchNormV3).

    The kernel normalizes in float32 whatever the input's type, as Keras does, and returns the
    batch variance with Bessel's correction for the moving average (PyTorch's convention; at the
    thousands of values per channel of a CIFAR batch the two differ by under 0.1%).
    """

    def call(self, inputs, training=None, mask=None):
        fusable = _on_tensorflow() and len(inputs.shape) == 4 and self.axis in (-1, 3) and mask is None
        if not (training and self.trainable and fusable and not self.renorm and not self.synchronized):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=self.gamma if self.scale else tf.ones((channels,)),
            offset=self.beta if self.center else tf.zeros((channels,)),
            mean=tf.zeros((0,)),
            variance=tf.zeros((0,)),
            epsilon=self.epsilon,
            is_training=True,
        )
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs


@keras.saving.register_keras_serializable(package="cifarcam")
def gelu(x):
    """The exact GELU, x·Φ(x); on TensorFlow one XLA-compiled pass each way (float32 inside)."""
    if not _on_tensorflow():
        return keras.activations.gelu(x, approximate=False)
    return _tensorflow_gelu()(x)


@functools.cache
def _tensorflow_gelu():
    """tf.custom_gradient GELU whose forward and backward passes are each one XLA kernel (built once).

    reduce_retracing: inference and Grad-CAM call it eagerly on many shapes, which would retrace it each time.
    """
    import tensorflow as tf

    @tf.function(jit_compile=True, reduce_retracing=True)
    def forward(x):
        wide = tf.cast(x, tf.float32)
        return tf.cast(wide * (0.5 + 0.5 * tf.math.erf(wide * math.sqrt(0.5))), x.dtype)

    @tf.function(jit_compile=True, reduce_retracing=True)
    def backward(x, upstream):
        wide = tf.cast(x, tf.float32)
        cdf = 0.5 + 0.5 * tf.math.erf(wide * math.sqrt(0.5))
        pdf = tf.exp(-0.5 * wide * wide) / math.sqrt(2 * math.pi)
        return tf.cast(tf.cast(upstream, tf.float32) * (cdf + wide * pdf), x.dtype)

    @tf.custom_gradient
    def fused_gelu(x):
        return forward(x), lambda upstream: backward(x, upstream)

    return fused_gelu


@keras.saving.register_keras_serializable(package="cifarcam")
class Conv2D(keras.layers.Conv2D):
    """Keras's Conv2D; on TensorFlow, a 3x3 'same' convolution over a map of side ≤ SMALL_MAP takes its
    kernel's gradient as nine matrix products, one per kernel position, of the shifted inputs with
    the output's gradient: 3.6x faster than oneDNN's kernel on 3x3 maps, 1.6x on 7x7 (bench.step_profile).
    """

    def convolution_op(self, inputs, kernel):
        plain = (self.kernel_size, self.strides, self.dilation_rate, self.groups) == ((3, 3), (1, 1), (1, 1), 1)
        small = inputs.shape[1] is not None and inputs.shape[1] <= SMALL_MAP and inputs.shape[2] <= SMALL_MAP
        if _on_tensorflow() and plain and small and self.padding == "same" and self.data_format == "channels_last":
            return _small_map_convolution(inputs, kernel)
        return super().convolution_op(inputs, kernel)


def _small_map_convolution(images, kernel):
    import tensorflow as tf

    @tf.custom_gradient
    def convolution(images, kernel):
        def gradients(upstream):
            image_gradient = tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(images), filter=kernel, out_backprop=upstream, strides=[1, 1, 1, 1], padding="SAME"
            )
            height, width, channels = images.shape[1:]
            padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
            flat_upstream = tf.reshape(upstream, (-1, upstream.shape[-1]))
            per_position = []
            for row in range(3):
                for column in range(3):
                    with tf.control_dependencies(per_position[-1:]):  # one shifted copy of the images at a time
                        shifted = tf.reshape(padded[:, row : row + height, column : column + width], (-1, channels))
                    per_position.append(tf.matmul(shifted, flat_upstream, transpose_a=True))
            return image_gradient, tf.reshape(tf.stack(per_position), kernel.shape)

        return tf.nn.conv2d(images, kernel, 1, "SAME"), gradients

    return convolution(
        images, tf.convert_to_tensor(kernel)
    )  # a tensor: the gradient reaches a variable through its read
