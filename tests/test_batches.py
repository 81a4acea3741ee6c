import numpy as np
import pytest
from recipes import SHARED

from cifarcam.core.errors import PipelineError
from cifarcam.training import batches, recipe
from cifarcam.training.batches import Batches

DEFAULTS = SHARED


def epoch_of(feed):
    return [feed[index] for index in range(len(feed))]


def test_an_epoch_is_full_batches_of_distinct_images_reshuffled_every_epoch():
    images = np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1)
    feed = Batches(images, np.arange(50) % 10, batch_size=8, seed=3)
    first = epoch_of(feed)
    assert len(feed) == 6 and all(len(x) == len(y) == 8 for x, y in first)  # 48 of 50: the 2 left over wait
    seen = np.concatenate([x.ravel() for x, _ in first])
    assert len(set(seen)) == 48
    assert all(np.array_equal(x.ravel() % 10, y) for x, y in first)  # images keep their labels
    feed.on_epoch_end()
    second = np.concatenate([x.ravel() for x, _ in epoch_of(feed)])
    assert not np.array_equal(seen, second)


def test_the_order_is_the_seeds_and_the_epochs_so_a_resumed_run_sees_the_same_batches():
    images = np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1)
    uninterrupted = Batches(images, np.zeros(40), batch_size=16, seed=7)
    uninterrupted.on_epoch_end()
    uninterrupted.on_epoch_end()
    resumed = Batches(images, np.zeros(40), batch_size=16, seed=7, epoch=2)
    for (ours, _), (theirs, _) in zip(epoch_of(uninterrupted), epoch_of(resumed), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    other_seed = Batches(images, np.zeros(40), batch_size=16, seed=8, epoch=2)
    assert not np.array_equal(epoch_of(other_seed)[0][0], epoch_of(resumed)[0][0])


def test_without_a_seed_every_image_comes_once_in_order():
    images = np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1)
    feed = Batches(images, np.arange(50) % 10, batch_size=8)
    batches = epoch_of(feed)
    assert [len(x) for x, _ in batches] == [8] * 6 + [2]
    np.testing.assert_array_equal(np.concatenate([x.ravel() for x, _ in batches]), np.arange(50))


def test_a_batch_larger_than_the_data_is_refused_with_the_fix():
    with pytest.raises(
        PipelineError, match="batch_size 64 is larger than the 40 training images: lower batch_size in params.yaml"
    ):
        batches.steps_per_epoch(40, 64)


def test_fit_trains_one_step_per_full_batch():
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (44, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 44)
    params = DEFAULTS | {"widths": [4, 4, 4], "epochs": 2, "batch_size": 10, "precision": "float32"}
    trainer = recipe.compile_trainer(params, images)
    trainer.fit(Batches(images, recipe.one_hot(labels), 10, seed=0), epochs=2, verbose=0)
    assert int(trainer.optimizer.iterations) == 2 * 4  # 4 full batches of 10 in 44 images, twice
