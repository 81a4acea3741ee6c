"""A throw-away single-node Slurm cluster (munged, slurmctld, slurmd) on loopback, all its files in one folder."""

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from pipeline_project import free_port

SCRIPT = Path(__file__).with_name("slurm_local.sh")


@contextlib.contextmanager
def local_cluster():
    """Start the cluster on free ports, yield its folder with SLURM_CONF set for every client; stop it after."""
    if not shutil.which("slurmctld"):
        pytest.fail("slurmctld is missing: run .ci/run (it installs slurm-wlm and munge)")
    folder = tempfile.mkdtemp(prefix="slurm.")
    ports = {"SLURMCTLD_PORT": str(free_port()), "SLURMD_PORT": str(free_port())}
    started = subprocess.run(
        [SCRIPT, "up", folder], env=os.environ | ports, capture_output=True, text=True, timeout=120
    )
    if started.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"the Slurm cluster did not start:\n{started.stdout}{started.stderr}")
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = os.path.join(folder, "etc", "slurm.conf")
    try:
        yield Path(folder)
    finally:
        subprocess.run([SCRIPT, "down", folder], timeout=120)
        if previous is None:
            os.environ.pop("SLURM_CONF")
        else:
            os.environ["SLURM_CONF"] = previous
        shutil.rmtree(folder, ignore_errors=True)
