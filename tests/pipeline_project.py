"""A throwaway copy of this project in its own git + DVC repository, driven through the real CLIs."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from cifarcam.core.names import CLASSES

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("cifarcam", "stages", "dvc.yaml", "params.yaml", "plots-template.html")
SHARED_COPY = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def make_image_folder_archive(path, train_per_class=10, test_per_class=2, seed=0):
    """A CIFAR-10-shaped tar.gz of PNGs (cifar10/{train,test}/<class>/NNNN.png), each class its own tint."""
    rng = np.random.default_rng(seed)
    staging = path.parent / (path.name + ".staging")
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for label, name in enumerate(CLASSES):
            folder = staging / "cifar10" / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                image = rng.integers(0, 60, (32, 32, 3)) + np.array([label * 20, 200 - label * 20, label * 10])
                cv2.imwrite(str(folder / f"{index:04d}.png"), np.clip(image, 0, 255).astype(np.uint8))
    with tarfile.open(path, "w:gz") as archive:
        archive.add(staging / "cifar10", arcname="cifar10")
    shutil.rmtree(staging)
    return path


class Project:
    def __init__(self, path):
        self.path = path
        self.env = os.environ | {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "DVC_NO_ANALYTICS": "1",
        }

    @classmethod
    def create(cls, path, **params):
        path.mkdir(parents=True, exist_ok=True)
        for name in PROJECT_FILES:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(source, path / name)
        project = cls(path)
        project.git("init", "-q")
        project.git("config", "user.email", "tests@example.com")
        project.git("config", "user.name", "tests")
        project.dvc("init", "-q")
        project.set_params(**params)
        project.commit("project")
        return project

    def run(self, *command, check=True):
        result = subprocess.run(command, cwd=self.path, env=self.env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def git(self, *args, **kwargs):
        return self.run("git", *args, **kwargs)

    def dvc(self, *args, **kwargs):
        return self.run(sys.executable, "-m", "dvc", *args, **kwargs)

    def repro(self, *args, **kwargs):
        """`dvc repro`; returns the result with `.stages`, the names of the stages that ran, in order."""
        result = self.dvc("repro", *args, **kwargs)
        result.stages = re.findall(r"^Running stage '([\w@-]+)'", result.stdout, re.MULTILINE)
        return result

    def set_params(self, **dotted):
        """Set params.yaml values by dotted key, adding keys a section lacks: set_params(**{"train_rgb.epochs": 2});
        a key without a dot is a top-level one: set_params(seeds=[1, 2])."""
        params = yaml.safe_load((self.path / "params.yaml").read_text())
        for key, value in dotted.items():
            if "." not in key:
                params[key] = value
                continue
            section, name = key.split(".")
            params[section][name] = value
        (self.path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def commit(self, message):
        self.git("add", "-A")
        self.git("commit", "-qm", message)


def tiny_params(source):
    """Parameters for a run of seconds: a few images per class, one epoch."""
    return {
        "download.source": str(source),
        "preprocess.max_per_class": None,
        "train.epochs": 1,
        "train.batch_size": 8,
        "train.widths": [8, 16, 16],
        "gradcam.images_per_row": 2,
        "gradcam.validation_images": 10,
        "gradcam.test_images": 20,
        "gradcam.sanity_images": 4,
        "gradcam.steps": 4,
    }


def start_repro(project, *args):
    """`dvc repro` in the background, in its own process group (so that the test can kill it whole)."""
    return subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", *args],
        cwd=project.path,
        env=project.env | {"PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def read_until(process, pattern):
    """Lines of a running process's output up to and including the first that matches `pattern`."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"the process ended before printing {pattern!r}:\n{''.join(lines)}")


def clone(project, path):
    """A fresh `git clone` of the project into `path` (so without anything DVC keeps out of git), same environment."""
    project.git("clone", "-q", str(project.path), str(path))
    copy = Project(path)
    copy.env = dict(project.env)
    return copy


def reset_workspace(project):
    """Back to the last commit: tracked files from git, DVC-tracked outputs from the cache."""
    project.git("reset", "-q", "--hard")
    project.dvc("checkout", "-q", "--force")


def experiments(project):
    """`dvc exp show --json` as {name: {"rev", "params", "metrics"}}: every experiment by name, every baseline by its
    branch name (or rev), the workspace as "workspace"; "params" is params.yaml's content, "metrics" maps each
    metrics file to its content."""
    found = {}
    for baseline in json.loads(project.dvc("exp", "show", "--json").stdout):
        rows = [(baseline.get("name") or baseline["rev"], baseline)]
        for experiment in baseline.get("experiments") or []:
            rows += [(experiment["name"] or rev["rev"], rev) for rev in experiment["revs"]]
        for name, row in rows:
            data = row.get("data") or {}
            found[name] = {
                "rev": row["rev"],
                "params": (data.get("params") or {}).get("params.yaml", {}).get("data", {}),
                "metrics": {path: entry.get("data", {}) for path, entry in (data.get("metrics") or {}).items()},
                "error": row.get("error"),
            }
    return found


def wait_for_queue(project, names, timeout_s=600):
    """Poll `dvc queue status` until every named task has finished; returns {name: final status}."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = project.dvc("queue", "status").stdout
        states = {}
        for line in status.splitlines():
            fields = line.split()
            for name in names:
                if name in fields:
                    states[name] = fields[-1]
        if len(states) == len(names) and all(state in ("Success", "Failed") for state in states.values()):
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"the queue did not finish in {timeout_s} s:\n{status}")
        time.sleep(2)


def free_port():
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
