"""Slurm's side of a sweep: the array job script that runs one grid point per task, submitting it, waiting for it.

Each task clones the git remote afresh, runs its point with `dvc exp run --pull` and publishes it in
two steps: `dvc push` (outputs to the DVC remote) and then `dvc exp push --no-cache` (the experiment's
git ref, the one atomic step). Until that ref lands there is no experiment on the remote, so a task
that fails, is cancelled or is killed at any moment leaves nothing half-made that a resubmission
would mistake for done. The ref is also how `cifarcam.sweep wait` tells success from failure, so
Slurm accounting (sacct), which small clusters often lack, is not needed.
"""

import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from cifarcam.core.errors import PipelineError
from cifarcam.scale.grid import set_param_args

SCRIPT = """#!/bin/bash
# Written by `python -m cifarcam.sweep submit`: array task N runs grid point N of a sweep in its own clone.
set -euo pipefail
export PATH={bin}:$PATH PYTHONUNBUFFERED=1  # the venv that submitted; logs line by line
dvc() {{ {python} -m dvc "$@"; }}
case $SLURM_ARRAY_TASK_ID in
{cases}
esac
clone={clones}/$name
echo "sweep: $name ${{params[*]}} at {short} on $(hostname), task ${{SLURM_ARRAY_JOB_ID}}_$SLURM_ARRAY_TASK_ID"
rm -rf "$clone"
git clone -q {origin} "$clone"
cd "$clone"
git checkout -q {baseline}
dvc exp run -n "$name" "${{params[@]}}" --pull
dvc push -q
dvc exp push -q --no-cache origin "$name"
cd / && rm -rf "$clone"
echo "sweep: $name pushed to {origin}"
"""


def job_script(origin, baseline, tasks, workdir):
    """The bash script of the array job; `tasks` is a list of (name, point), task N running tasks[N]."""
    cases = "\n".join(
        f"  {index}) name={name}; params=({shlex.join(set_param_args(point))}) ;;"
        for index, (name, point) in enumerate(tasks)
    )
    return SCRIPT.format(
        bin=shlex.quote(str(Path(sys.executable).parent)),
        python=shlex.quote(sys.executable),
        cases=cases,
        clones=shlex.quote(str(workdir / "clones")),
        origin=shlex.quote(origin),
        baseline=baseline,
        short=baseline[:7],
    )


def task_log(workdir, job_id, index):
    return workdir / "jobs" / f"{job_id}_{index}.log"


def _slurm(*command, stdin=None):
    """A Slurm client command's result; a missing client is the user's to fix (wrong machine), so one line."""
    if not shutil.which(command[0]):
        raise PipelineError(f"{command[0]} not found: run on a Slurm login node (or use `dvc queue` on one machine)")
    return subprocess.run(command, input=stdin, capture_output=True, text=True)


def submit(script, task_count, workdir, sbatch_args=()):
    """Submit the script as one array job of `task_count` tasks (logs in workdir/jobs); returns the job id."""
    (workdir / "jobs").mkdir(parents=True, exist_ok=True)
    (workdir / "clones").mkdir(parents=True, exist_ok=True)
    result = _slurm(
        "sbatch",
        "--parsable",
        f"--array=0-{task_count - 1}",
        "--job-name=cifarcam-sweep",
        f"--output={workdir / 'jobs' / '%A_%a.log'}",
        *sbatch_args,
        stdin=script,
    )
    if result.returncode != 0:
        reason = (result.stderr.strip() or "no reason given").splitlines()[-1]
        raise PipelineError(f"sbatch refused the sweep: {reason}")
    job_id = result.stdout.strip().split(";")[0]
    (workdir / "jobs" / f"{job_id}.sh").write_text(script)
    return job_id


def wait_until_finished(job_id, poll_s=2.0):
    """Block until no task of the job is pending or running (squeue lists none, or no longer knows the job)."""
    while True:
        listed = _slurm("squeue", "-h", "-j", job_id, "-o", "%i")
        if listed.returncode != 0 or not listed.stdout.strip():
            return
        time.sleep(poll_s)
