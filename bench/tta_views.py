"""Validation accuracy of the trained models under richer test-time augmentation than evaluate's.

    python -m bench.tta_views        # after dvc repro (or dvc pull): models/ and data/prepared/

Each set of views is a list of (rows, columns) shifts (`cifarcam.study.tta.shifted`), with or without
their mirrors; the probabilities are averaged over the views, as `cifarcam.study.tta` does. The validation split is the
one no recipe choice looked at, so picking a TTA here does not bias the test figures.
"""

from cifarcam.data import prepare
from cifarcam.study import tta
from cifarcam.training import models

SHIFTS = {
    "none": [(0, 0)],
    "1-pixel diagonal": [(0, 0), (-1, -1), (1, 1)],  # with mirrors: evaluate's flip_translate
    "both 1-pixel diagonals": [(0, 0), (-1, -1), (1, 1), (-1, 1), (1, -1)],
    "every 1-pixel shift": [(rows, columns) for rows in (-1, 0, 1) for columns in (-1, 0, 1)],
    "2-pixel diagonal": [(0, 0), (-2, -2), (2, 2)],
}


def view(images, rows, columns, mirrored):
    moved = tta.shifted(images, rows, columns)
    return moved[:, :, ::-1] if mirrored else moved


def main():
    print("| shifts | mirrored too | views | gray | rgb |\n|---|---|---|---|---|")
    scores = {}
    for variant in ("gray", "rgb"):
        arrays = prepare.load_prepared(f"data/prepared/{variant}.npz")
        model = models.load(f"models/{variant}.keras")
        cache = {}
        for name, shifts in SHIFTS.items():
            for mirrored in (False, True):
                keys = [
                    (rows, columns, flip)
                    for rows, columns in shifts
                    for flip in ((False, True) if mirrored else (False,))
                ]
                for key in keys:
                    if key not in cache:
                        cache[key] = model.predict(view(arrays["x_val"], *key), batch_size=500, verbose=0)
                probabilities = sum(cache[key] for key in keys) / len(keys)
                scores[name, mirrored, variant] = (probabilities.argmax(axis=1) == arrays["y_val"]).mean()
    for name in SHIFTS:
        for mirrored in (False, True):
            print(
                f"| {name} | {mirrored} | {len(SHIFTS[name]) * (1 + mirrored)} | "
                f"{scores[name, mirrored, 'gray']:.2%} | {scores[name, mirrored, 'rgb']:.2%} |"
            )


if __name__ == "__main__":
    main()
