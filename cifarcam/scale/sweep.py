"""A `-S` grid as a Slurm array job, one task per point, each pushing its experiment to the git and DVC remotes.

    cifarcam sweep submit -S 'train.learning_rate=0.001,0.01' -S train.epochs=2 --wait --gather
    python -m cifarcam.sweep wait JOBID       # one line per task: ok, or failed with its log and error
    python -m cifarcam.sweep gather JOBID     # `dvc exp pull` of the grid's experiments, for `dvc exp show`

The grid expands as `dvc exp run --queue` expands it (cifarcam.scale.grid); `dvc queue` stays the way to
run one on a single machine. Each point's experiment is named after its values, so submitting the
same grid again runs only the points that have no experiment on the git remote yet (cancelled or
failed ones). The commit swept is HEAD (or --rev), which must be pushed: each task clones it.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from cifarcam.core.errors import PipelineError, run_stage
from cifarcam.core.names import training_logs
from cifarcam.core.params import seeds
from cifarcam.scale import grid, slurm


def rank_command():
    """The command that ranks the gathered experiments by the first seed's RGB validation loss."""
    logs = training_logs("rgb", seeds()[0]).as_posix()
    return f"dvc exp show --sort-by {logs}/metrics.json:best_val_loss --sort-order asc"


def _git(*args):
    result = subprocess.run(["git", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise PipelineError(f"git {args[0]} failed: {(result.stderr.strip() or 'no message').splitlines()[-1]}")
    return result.stdout.strip()


def remote_url(origin):
    """A git remote's URL (a remote name or a URL as given); local paths made absolute, as tasks start elsewhere."""
    names = _git("remote").split()
    url = _git("remote", "get-url", origin) if origin in names else origin
    return str(Path(url).resolve()) if Path(url).exists() else url


def remote_refs(url):
    """{ref: sha} of the git remote."""
    listing = _git("ls-remote", url)
    return {ref: sha for sha, ref in (line.split("\t") for line in listing.splitlines() if line)}


def experiments_on_remote(refs, baseline):
    """The names of the experiments of `baseline` that the remote holds (DVC's refs/exps/<ab>/<cdef...>/<name>)."""
    prefix = f"refs/exps/{baseline[:2]}/{baseline[2:]}/"
    return {ref[len(prefix) :] for ref in refs if ref.startswith(prefix)}


def require_published(baseline, refs, url):
    """Tasks clone the baseline from the remote: refuse to submit a commit that no branch or tag there holds."""
    for ref, sha in refs.items():
        if ref.startswith(("refs/heads/", "refs/tags/")):
            reachable = subprocess.run(["git", "merge-base", "--is-ancestor", baseline, sha], capture_output=True)
            if reachable.returncode == 0:
                return
    raise PipelineError(f"commit {baseline[:7]} is not on {url}: `git push` it first (each task clones it from there)")


def record_path(workdir, job_id):
    return workdir / "jobs" / f"{job_id}.json"


def submit(specs, origin, rev, workdir, sbatch_args):
    """Submit the grid's points that have no experiment on the remote; returns the sweep record (job None if none)."""
    points = grid.points(specs)
    url = remote_url(origin)
    baseline = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    refs = remote_refs(url)
    require_published(baseline, refs, url)
    done = experiments_on_remote(refs, baseline)
    named = [(grid.experiment_name(point), point) for point in points]
    tasks = [(name, point) for name, point in named if name not in done]
    record = {"origin": url, "baseline": baseline, "points": [{"name": n, "point": p} for n, p in named], "job": None}
    print(f"{len(points)} points at {baseline[:7]}: {len(points) - len(tasks)} already on {url}, {len(tasks)} to run")
    if tasks:
        job_id = slurm.submit(slurm.job_script(url, baseline, tasks, workdir), len(tasks), workdir, sbatch_args)
        record |= {"job": job_id, "tasks": [{"name": n, "point": p} for n, p in tasks]}
        record_path(workdir, job_id).write_text(json.dumps(record, indent=1))
        print(f"submitted job {job_id}: tasks 0-{len(tasks) - 1}, logs {workdir / 'jobs'}/{job_id}_<task>.log")
    return record


def load_record(workdir, job_id):
    path = record_path(workdir, job_id)
    if not path.exists():
        raise PipelineError(f"no sweep job {job_id} in {workdir}: pass the --workdir that `submit` used")
    return json.loads(path.read_text())


def error_line(log):
    """The line that says why a task failed: the stage's `error: ...`, else DVC's last ERROR, else the last line."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else ["(no log: the task never started)"]
    for line in lines:
        if line.startswith("error: "):
            return line
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["(empty log)"])[-1]


def wait(record, workdir):
    """Wait for the job, print one line per task; a task whose experiment is not on the remote failed (or was
    cancelled), which is an error."""
    job_id = record["job"]
    slurm.wait_until_finished(job_id)
    landed = experiments_on_remote(remote_refs(record["origin"]), record["baseline"])
    failed = 0
    for index, task in enumerate(record["tasks"]):
        values = " ".join(f"{key}={value}" for key, value in task["point"].items())
        log = slurm.task_log(workdir, job_id, index)
        if task["name"] in landed:
            print(f"ok      {task['name']}  {values}")
        else:
            failed += 1
            print(f"failed  {task['name']}  {values}  {log}: {error_line(log)}")
    if failed:
        count = len(record["tasks"])
        raise PipelineError(f"{failed} of {count} tasks of job {job_id} failed: submit again to rerun them")


def gather(record):
    """`dvc exp pull` (refs only: params and metrics are in git) of every grid point that has an experiment."""
    url = record["origin"]
    names = sorted(experiments_on_remote(remote_refs(url), record["baseline"]) & {p["name"] for p in record["points"]})
    if names:
        pulled = subprocess.run([sys.executable, "-m", "dvc", "exp", "pull", "--no-cache", url, *names])
        if pulled.returncode != 0:
            raise PipelineError(f"dvc exp pull from {url} failed (see above)")
    gathered = f"gathered {len(names)} of {len(record['points'])} experiments"
    print(f"{gathered}; rank them on validation with:\n  {rank_command()}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("submit", "wait", "gather"):
        command = commands.add_parser(name)
        command.add_argument("--workdir", type=Path, default=Path(".sweeps"), help="job scripts, logs and clones")
        if name == "submit":
            command.add_argument("-S", "--set-param", dest="specs", action="append", required=True, metavar="KEY=V1,V2")
            command.add_argument("--origin", default="origin", help="git remote (name or URL) the tasks clone from")
            command.add_argument("--rev", default="HEAD", help="the commit to sweep from (pushed)")
            command.add_argument("--sbatch-arg", action="append", default=[], help="e.g. --sbatch-arg=--time=1:00:00")
            command.add_argument("--wait", action="store_true", help="wait for the tasks and report each")
            command.add_argument("--gather", action="store_true", help="wait, then `dvc exp pull` the experiments")
        else:
            command.add_argument("job")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    if args.command == "submit":
        record = submit(args.specs, args.origin, args.rev, workdir, args.sbatch_arg)
        failure = None
        if record["job"] and (args.wait or args.gather):
            try:
                wait(record, workdir)
            except PipelineError as error:
                failure = error  # the points that did land are gathered all the same
        if args.gather:
            gather(record)
        if failure:
            raise failure
    elif args.command == "wait":
        wait(load_record(workdir, args.job), workdir)
    else:
        gather(load_record(workdir, args.job))


if __name__ == "__main__":
    run_stage(main)
