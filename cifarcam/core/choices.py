"""The named choices of params.yaml, in one place (classes, variants and architectures: cifarcam.core.names).

The parameter checks (cifarcam.core.params) read them without loading a backend; the modules that
implement each choice check against the same names.
"""

ACTIVATIONS = ("relu", "gelu")
OPTIMIZERS = ("adamw", "sgd", "muon")
SCHEDULES = ("onecycle", "cosine", "constant")
WEIGHT_DECAY_MODES = ("decoupled", "coupled")
FLIPS = ("none", "random", "alternate")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
# Attribution methods (cifarcam.explain.methods): seven class activation maps at a layer, then two
# gradient methods at the input's pixels. gradcam.method also takes `auto`, the most faithful on validation.
EXPLANATION_METHODS = (
    "gradcam",
    "gradcam++",
    "hirescam",
    "xgradcam",
    "layercam",
    "eigencam",
    "scorecam",
    "integrated_gradients",
    "smoothgrad",
)
TTA_MODES = ("none", "flip", "flip_translate")
