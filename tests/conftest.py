import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest


@pytest.fixture(scope="session")
def slurm_cluster():
    """One local Slurm cluster for the whole session (tests/slurm_cluster.py), its folder; SLURM_CONF points to it."""
    from slurm_cluster import local_cluster

    with local_cluster() as folder:
        yield folder
