"""Stages train_gray@<seed> and train_rgb@<seed>: `python -m stages.train gray|rgb SEED` trains on
data/prepared/<variant>.npz with every random draw seeded by SEED (one of params.yaml's `seeds`).

Writes models/<variant>/seed<SEED>.keras and reports/train/<variant>/seed<SEED>. A run that is killed
resumes from checkpoints/<variant>/seed<SEED> (a persistent DVC output) next time.
With CIFARCAM_DISTRIBUTE=data_parallel (README, "Beyond one machine") every process of the
training runs this command, and process 0 writes the outputs.
"""

import sys
from pathlib import Path

from cifarcam.core.errors import PipelineError, run_stage
from cifarcam.core.names import VARIANTS, checkpoint_dir, model_path, training_logs
from cifarcam.core.params import recipe
from cifarcam.data.prepare import load_prepared
from cifarcam.scale import distributed
from cifarcam.training import checkpoint
from cifarcam.training.train import train


def main():
    variant, seed = sys.argv[1:] if len(sys.argv) == 3 else (None, None)
    if variant not in VARIANTS or not seed.isdigit():
        raise PipelineError(f"usage: python -m stages.train {'|'.join(VARIANTS)} SEED (an integer ≥ 0)")
    params = recipe(variant, seed=int(seed))
    place = distributed.start(params["batch_size"])
    data = load_prepared(Path("data/prepared") / f"{variant}.npz", scale=False)
    checkpoints = checkpoint_dir(variant, seed)
    model = train(data, params, live_dir=training_logs(variant, seed), checkpoint_dir=checkpoints, place=place)
    with place.output(model_path(variant, seed)) as partial:
        model.save(partial)
    if place.writes:
        checkpoint.finish(checkpoints)


if __name__ == "__main__":
    run_stage(main)
