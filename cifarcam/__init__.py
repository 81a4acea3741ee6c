"""CIFAR-10 grayscale-versus-RGB study: data, models, metrics and Grad-CAM for the DVC stages."""

import os

# TensorFlow's C++ logging prints spurious graph warnings at ERROR level on every fit; Python
# exceptions still surface. Set TF_CPP_MIN_LOG_LEVEL yourself to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
