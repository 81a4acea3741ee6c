import keras
import numpy as np
from pipeline_project import CLASSES

from cifarcam.explain import geometry
from cifarcam.explain.examples import Explainer
from cifarcam.study import calibration, metrics, plots


def small_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.MaxPooling2D()(keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs))
    features = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="features")(x)
    logits = keras.layers.Dense(10, name="logits")(keras.layers.GlobalAveragePooling2D()(features))
    return keras.Model(inputs, keras.layers.Activation("softmax")(logits))


def explainer(count=40):
    model, rng = small_model(), np.random.default_rng(1)
    images, truth = rng.random((count, 32, 32, 3)).astype("float32"), rng.integers(0, 10, count)
    data = {"x_test": images, "y_test": truth, "classes": list(CLASSES)}
    probabilities = model.predict(images, verbose=0)
    return Explainer(model, data, probabilities, "gradcam", geometry.blocks(model)["block1"])


def test_the_gallery_shows_the_surest_mistakes_first_in_rows():
    shown = explainer()
    rows = shown.surest_mistakes(2, 3)
    assert [label for label, _ in rows] == ["mistakes 1–3", "mistakes 4–6"]
    wrong = np.flatnonzero(shown.predicted != shown.truth)
    surest = wrong[np.argsort(-shown.probabilities[wrong].max(axis=1), kind="stable")][:6]
    captions = [caption for _, cells in rows for _, caption in cells]
    expected = [
        f"{CLASSES[shown.truth[i]]} → {CLASSES[shown.predicted[i]]}, {shown.probabilities[i].max():.2f}" for i in surest
    ]
    assert captions == expected
    assert all(image.shape == (32, 32, 3) and image.dtype == np.uint8 for _, cells in rows for image, _ in cells)


def test_the_maps_explain_the_given_predictions_not_the_models_own():
    shown = explainer(6)
    given = np.roll(shown.probabilities, 1, axis=1)  # e.g. those with test-time augmentation
    other = Explainer(
        shown.model,
        {"x_test": shown.images, "y_test": shown.truth, "classes": shown.classes},
        given,
        "gradcam",
        shown.layer,
    )
    assert (other.predicted == (shown.predicted + 1) % 10).all()
    assert not np.allclose(other.maps(np.arange(6)), shown.maps(np.arange(6)))


def test_a_model_without_mistakes_gets_one_empty_row():
    shown = explainer()
    shown.truth = shown.predicted.copy()
    assert shown.surest_mistakes(2, 3) == [("mistakes", [])]


def test_the_evaluation_figures_are_small_pngs(tmp_path):
    rng = np.random.default_rng(0)
    truth, predicted = rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    probabilities = rng.dirichlet(np.ones(10), 500)
    gray, rgb = rng.random(10), rng.random(10)
    gains = [(gain - 0.05, gain + 0.05) for gain in rgb - gray]  # each class's 95% interval holds its gain
    plots.class_accuracy({"gray ResNet": gray, "RGB ResNet": rgb}, CLASSES, tmp_path / "a.png", "t", gains)
    plots.reliability(calibration.reliability(truth, probabilities), tmp_path / "r.png", "t")
    plots.confusion(metrics.confusion_shares(truth, predicted, CLASSES), CLASSES, tmp_path / "c.png", "t")
    for name in ("a.png", "r.png", "c.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:4] == b"\x89PNG" and len(data) < 300_000
