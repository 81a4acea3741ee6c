"""The named choices of params.yaml, in one place.

The parameter checks (cifarcam.params) read them without loading a backend; the modules that
implement each choice check against the same names.
"""

ARCHITECTURES = ("resnet", "airbench", "study_gray_cnn", "study_rgb_cnn")
ACTIVATIONS = ("relu", "gelu")
OPTIMIZERS = ("adamw", "sgd", "muon")
FLIPS = ("none", "random", "alternate")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
CAM_METHODS = ("gradcam", "gradcam++")
TTA_MODES = ("none", "flip", "flip_translate")
