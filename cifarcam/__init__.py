"""CIFAR-10 grayscale-versus-RGB study: data, models, metrics and Grad-CAM for the DVC stages.

Importing the package loads no backend: modules that compute with Keras import it through
`cifarcam.backend`.
"""
