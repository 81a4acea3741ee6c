"""Stages train_gray and train_rgb: `python -m stages.train gray|rgb` trains on data/prepared/<variant>.npz.

A run that is killed resumes from checkpoints/<variant> (a persistent DVC output) next time.
With CIFARCAM_DISTRIBUTE=data_parallel (README, "Beyond one machine") every process of the
training runs this command, and process 0 writes the outputs.
"""

import sys
from pathlib import Path

from cifarcam.core.errors import PipelineError, run_stage
from cifarcam.core.names import VARIANTS
from cifarcam.core.params import recipe
from cifarcam.data.prepare import load_prepared
from cifarcam.scale import distributed
from cifarcam.training import checkpoint
from cifarcam.training.train import train


def main():
    variant = sys.argv[1] if len(sys.argv) == 2 else None
    if variant not in VARIANTS:
        raise PipelineError(f"usage: python -m stages.train {'|'.join(VARIANTS)}")
    params = recipe(variant)
    place = distributed.start(params["batch_size"])
    data = load_prepared(Path("data/prepared") / f"{variant}.npz", scale=False)
    checkpoints = Path("checkpoints") / variant
    model = train(data, params, live_dir=Path("reports/train") / variant, checkpoint_dir=checkpoints, place=place)
    with place.output(Path("models") / f"{variant}.keras") as partial:
        model.save(partial)
    if place.writes:
        checkpoint.finish(checkpoints)


if __name__ == "__main__":
    run_stage(main)
