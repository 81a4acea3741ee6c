"""One process of a data-parallel training on tiny data, run as the train stage runs it.

`python tests/distributed_worker.py FOLDER EPOCHS [CHECKPOINTS]` trains with distributed.start and
train, then saves what the tests compare, by process id: the model (through Place.output, as the
stage does), the final weights, the history and the training rows the process fed. DVCLive writes to
FOLDER/live-<id>; the checkpoints go to CHECKPOINTS (default FOLDER/checkpoint, shared by all).
TEST_PARAMS, a JSON object, overrides keys of test_train's PARAMS.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from test_train import PARAMS, tiny_data  # noqa: E402

from cifarcam.scale import distributed  # noqa: E402
from cifarcam.training.train import train  # noqa: E402

if os.environ.get(
    "TEST_LOGICAL_CPUS"
):  # TensorFlow: split the CPU into devices, as XLA's host device count does for JAX
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * int(os.environ["TEST_LOGICAL_CPUS"])
    )

folder, epochs = Path(sys.argv[1]), int(sys.argv[2])
checkpoints = Path(sys.argv[3]) if len(sys.argv) > 3 else folder / "checkpoint"
params = (
    PARAMS | {"epochs": epochs, "batch_size": 20, "patience": None} | json.loads(os.environ.get("TEST_PARAMS", "{}"))
)
place = distributed.start(params["batch_size"])
pid = place.process_id
data = tiny_data(per_class=12)
model = train(data, params, folder / f"live-{pid}", checkpoints, place=place)
with place.output(folder / f"model-{pid}.keras") as partial:
    model.save(partial)
np.savez(folder / f"weights-{pid}.npz", *model.get_weights())
fed = place.shard(np.arange(len(data["x_train"])))[0].tolist()
history = json.loads((checkpoints / "state.json").read_text())["history"]
(folder / f"run-{pid}.json").write_text(
    json.dumps({"place": [pid, place.process_count, place.device_count], "fed": fed, "history": history})
)
