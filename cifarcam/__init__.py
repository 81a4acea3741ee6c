"""CIFAR-10 grayscale-versus-RGB study: data, models, metrics and Grad-CAM for the DVC stages."""
