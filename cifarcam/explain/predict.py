"""Explain your own images: top-3 classes and an attribution map overlay at the original size.

    python -m cifarcam.predict photo.jpg other.png --model models/rgb/seed42.keras --method hirescam --layer block3

Without --model: the RGB model of the first of params.yaml's `seeds`. Without --method and --layer: the
pipeline's choice on validation, as reports/explanations.json records it (hirescam at the last block before
the first run).

Any size and format OpenCV reads; each image is resized to 32x32 for the model (grayscale or
RGBA converted: alpha is composited onto white). Overlays are written as <out>/<name>_cam.png.
"""

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from cifarcam.core.choices import EXPLANATION_METHODS
from cifarcam.core.errors import PipelineError, run_stage
from cifarcam.core.files import atomic_output
from cifarcam.core.names import model_path
from cifarcam.core.params import seeds
from cifarcam.data.readers import CLASSES
from cifarcam.explain import cam, geometry, methods
from cifarcam.training import models


def read_rgb(path):
    """An image file as float32 RGB in [0, 1], at its own resolution."""
    try:
        blob = np.fromfile(path, np.uint8)
    except OSError as error:
        raise PipelineError(f"cannot read {path}: {error.strerror or error}") from None
    image = cv2.imdecode(blob, cv2.IMREAD_UNCHANGED) if blob.size else None
    if image is None:
        raise PipelineError(f"{path} is not an image OpenCV can read (PNG, JPEG, BMP, WebP, TIFF, ...)")
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    image = image.astype(np.float32) / scale
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    if image.shape[-1] == 4:
        alpha = image[..., 3:]
        image = image[..., :3] * alpha + (1 - alpha)
    return cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)


def model_input(rgb, channels):
    small = cv2.resize(rgb, (32, 32), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)[..., None] if channels == 1 else small


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--model", type=Path, help="a saved .keras model (default: the first seed's RGB model)")
    parser.add_argument("--method", choices=EXPLANATION_METHODS, help="default: the pipeline's choice")
    parser.add_argument("--layer", help="block1, block2, ... (a map at a layer; default: the pipeline's choice)")
    parser.add_argument("--out", type=Path, default=Path("predictions"))
    args = parser.parse_args(argv)
    model_file = args.model or model_path("rgb", seeds()[0])
    chosen = pipeline_choice()
    method = args.method or chosen["method"]

    originals = [read_rgb(path) for path in args.images]
    model = models.load(model_file)
    batch = np.stack([model_input(image, model.input_shape[-1]) for image in originals])
    probabilities = model.predict(batch, verbose=0)
    top = np.argsort(-probabilities, axis=1)[:, :3]
    layer = None
    if method not in methods.PIXEL_METHODS:
        layer = geometry.block(model, args.layer or chosen["layer"] or list(geometry.blocks(model))[-1])
    maps = methods.attribution_maps(model, batch, top[:, 0], method, layer)
    args.out.mkdir(parents=True, exist_ok=True)
    for path, original, ranked, probs, heatmap in zip(args.images, originals, top, probabilities, maps, strict=True):
        height, width = original.shape[:2]
        full_size = cam.upsample(heatmap[None], (height, width))[0]
        target = args.out / f"{path.stem}_cam.png"
        with atomic_output(target) as partial:
            cv2.imwrite(str(partial), cv2.cvtColor(cam.overlay(original, full_size), cv2.COLOR_RGB2BGR))
        guesses = ", ".join(f"{CLASSES[k]} {probs[k]:.3f}" for k in ranked)
        print(f"{path}: {guesses} -> {target}")


def pipeline_choice(path=Path("reports/explanations.json")):
    """The method and layer the gradcam stage chose on validation, or HiResCAM at the last block before it ran."""
    if path.exists():
        choice = json.loads(path.read_text())["choice"]
        return {"method": choice["method"], "layer": None if choice["layer"] == "pixels" else choice["layer"]}
    return {"method": "hirescam", "layer": None}


if __name__ == "__main__":
    run_stage(lambda: main(sys.argv[1:]))
