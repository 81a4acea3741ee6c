"""The `cifarcam` command, installed by `pip install -e .`: one subcommand per tool beside the pipeline.

`python -m cifarcam.predict` and `python -m cifarcam.sweep` run the same code.
"""

import importlib
import sys

from cifarcam.core.errors import run_stage

COMMANDS = {
    "predict": (
        "cifarcam.explain.predict",
        "classify your own images with a trained model and draw its class activation maps",
    ),
    "sweep": (
        "cifarcam.scale.sweep",
        "run a -S grid of `dvc exp run` experiments as a Slurm array job, and gather them",
    ),
}
USAGE = (
    "usage: cifarcam {"
    + ",".join(COMMANDS)
    + "} [-h] ...\n\n"
    + "\n".join(f"  {name:<9}{summary}" for name, (_, summary) in COMMANDS.items())
    + "\n\n`cifarcam <command> --help` gives each command's options; `dvc repro` runs the pipeline."
)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        sys.exit(0 if argv else 2)
    if argv[0] not in COMMANDS:
        print(f"error: unknown command '{argv[0]}': choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(2)
    name, rest = argv[0], argv[1:]
    sys.argv[0] = f"cifarcam {name}"  # argparse's usage line names the command as typed
    module = importlib.import_module(COMMANDS[name][0])
    run_stage(lambda: module.main(rest))
