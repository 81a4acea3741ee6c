import numpy as np
import pytest
import tensorflow as tf

from cifarcam.explain import cam


@pytest.mark.parametrize("channels", [1, 3])
def test_overlay_is_rgb_uint8_of_the_image_size(channels):
    image = np.full((32, 32, channels), 0.5, np.float32)
    heatmap = np.zeros((32, 32), np.float32)
    heatmap[:16] = 1.0
    blended = cam.overlay(image, heatmap)
    assert blended.shape == (32, 32, 3) and blended.dtype == np.uint8
    assert not np.array_equal(blended[0, 0], blended[31, 0])


def test_upsampling_is_bilinear_with_half_pixel_centres():
    coarse = np.random.default_rng(0).random((2, 4, 4)).astype("float32")
    expected = tf.image.resize(coarse[..., None], (32, 32), method="bilinear").numpy()[..., 0]  # half-pixel centres
    assert np.allclose(cam.upsample(coarse, (32, 32)), expected, atol=1e-5)
