"""Our ROAD and deletion (cifarcam.explain.faithfulness) against Quantus 0.6 on the same small case.

    pip install --no-deps --target /tmp/quantus quantus==0.6.0 scikit-image==0.26.0 imageio==2.38.2 \
        tifffile==2026.3.3 lazy-loader==0.6 cachetools==8.0.3   # not in requirements: see below
    PYTHONPATH=/tmp/quantus python -m bench.quantus_crosscheck

Quantus is not a dependency: its `tensorflow` extra pins tensorflow<2.16, keras<3 and numpy<2, and
its plain install pulls opencv-python beside our opencv-python-headless (both are `cv2`), hence
--no-deps into a folder of its own. Its metrics do run on a Keras 3 model through tf.keras, except
where they call np.trapz, which NumPy 2.4 no longer has (PixelFlipping's return_auc_per_sample).

The case: a fixed gray model that looks only at a 6x6 patch, 64 images, and maps without ties
(Quantus orders pixels by a plain argsort), at removal shares of 1/4, 1/2 and 3/4, whole pixel
counts for both (Quantus truncates, we round). Noise is 0 in both imputations, so each check
should agree to float precision:
- the imputation itself, Quantus's noisy_linear_imputation against faithfulness.impute;
- ROAD, Quantus's accuracy after MoRF removal against the accuracy on our imputed images;
- deletion, Quantus's PixelFlipping curve to black against ours (faithfulness.per_image, steps=4).
"""

import numpy as np
import quantus
from quantus.functions.perturb_func import noisy_linear_imputation

from cifarcam.core.backend import keras
from cifarcam.explain import faithfulness

PATCH, TOP, COUNT, STEPS = 6, 13, 64, 4


def patch_model():
    """Class 1's probability is sigmoid(40 (m - 0.75)), m the mean of a 6x6 patch in the middle."""
    inputs = keras.Input((32, 32, 1))
    patch = keras.layers.Cropping2D(((TOP, 32 - TOP - PATCH), (TOP, 32 - TOP - PATCH)))(inputs)
    logits = keras.layers.Dense(
        2,
        kernel_initializer=keras.initializers.Constant([[-20.0, 20.0]]),
        bias_initializer=keras.initializers.Constant([15.0, -15.0]),
    )(keras.layers.GlobalAveragePooling2D()(patch))
    return keras.Model(inputs, keras.layers.Activation("softmax")(logits))


def case(seed=0):
    """Images with the bright patch, and maps from on the patch (with noise) to random."""
    rng = np.random.default_rng(seed)
    images = (rng.random((COUNT, 32, 32, 1)) * 0.3).astype(np.float32)
    images[:, TOP : TOP + PATCH, TOP : TOP + PATCH] = 1.0
    on_patch = np.zeros((COUNT, 32, 32))
    on_patch[:, TOP : TOP + PATCH, TOP : TOP + PATCH] = 1.0
    weight = np.linspace(0, 1, COUNT)[:, None, None]
    maps = (weight * on_patch + rng.random((COUNT, 32, 32))).astype(np.float32)
    return images, maps, np.ones(COUNT, int)


def imputation_difference(images, maps):
    shares = np.arange(1, STEPS) / STEPS
    ranks = faithfulness.relevance_ranks(maps, np.random.default_rng(0))
    worst = 0.0
    for share in shares:
        removed = ranks < round(share * ranks[0].size)
        ours = faithfulness.impute(images, removed, noise=0)
        for image, mask, mine in zip(images, removed, ours, strict=True):
            theirs = noisy_linear_imputation(np.moveaxis(image, -1, 0), np.flatnonzero(mask), noise=0.0)
            worst = max(worst, float(np.abs(np.moveaxis(theirs, 0, -1) - mine).max()))
    return worst


def road_accuracies(model, images, maps, classes):
    metric = quantus.ROAD(
        percentages=[100 * k // STEPS for k in range(1, STEPS)], noise=0.0, normalise=False, disable_warnings=True
    )
    theirs = metric(model=model, x_batch=images, y_batch=classes, a_batch=maps[:, None], channel_first=False)
    ranks = faithfulness.relevance_ranks(maps, np.random.default_rng(0))
    ours = {}
    for k in range(1, STEPS):
        removed = ranks < round(k / STEPS * ranks[0].size)
        predicted = model.predict(faithfulness.impute(images, removed, noise=0), verbose=0).argmax(axis=1)
        ours[100 * k // STEPS] = float((predicted == classes).mean())
    return {p: float(v) for p, v in theirs.items()}, ours


def deletion_areas(model, images, maps, classes):
    metric = quantus.PixelFlipping(
        features_in_step=images[0].size // STEPS, perturb_baseline=0.0, normalise=False, disable_warnings=True
    )
    curves = np.array(metric(model=model, x_batch=images, y_batch=classes, a_batch=maps[:, None], channel_first=False))
    start = model.predict(images, verbose=0)[np.arange(len(images)), classes]
    theirs = np.trapezoid(np.concatenate([start[:, None], curves], axis=1), dx=1 / STEPS, axis=1)
    return theirs, faithfulness.per_image(model, images, maps, classes, steps=STEPS)["deletion"]


def main():
    model, (images, maps, classes) = patch_model(), case()
    print(f"imputation, largest difference: {imputation_difference(images, maps):.2e}")
    theirs, ours = road_accuracies(model, images, maps, classes)
    print(f"ROAD MoRF accuracy by percentage removed: Quantus {theirs}, ours {ours}")
    theirs, ours = deletion_areas(model, images, maps, classes)
    print(
        f"deletion AUC: Quantus mean {theirs.mean():.6f}, ours {ours.mean():.6f}, "
        f"largest per-image difference {np.abs(theirs - ours).max():.2e}"
    )


if __name__ == "__main__":
    main()
