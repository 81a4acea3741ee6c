"""Does requirements.txt install on Linux x86-64, Linux aarch64, macOS arm64 and Windows? A pip dry run for each.

pip's --platform picks another platform's wheels but evaluates environment markers for this machine,
so each target's markers are evaluated here first (packaging, as pip does) and pip resolves what is
left, wheels only, for CPython 3.11. antlr4-python3-runtime 4.9.3 (Hydra's, for DVC) publishes only
a source archive: its pure-Python wheel is built once and offered to every target.

    python .ci/platforms.py    # one line per platform; exit status 1 if any fails to resolve
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYTHON = "3.11"
SOURCE_ONLY = ["antlr4-python3-runtime==4.9.3"]


def manylinux(machine, glibc_minor=35):
    """The wheel tags a Linux with glibc 2.35 (Ubuntu 22.04, Debian 12 has 2.36) takes, newest first."""
    return [f"manylinux_2_{minor}_{machine}" for minor in range(glibc_minor, 16, -1)] + [f"manylinux2014_{machine}"]


TARGETS = {
    "Linux x86-64": (
        manylinux("x86_64"),
        {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"},
    ),
    "Linux aarch64": (
        manylinux("aarch64"),
        {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64", "os_name": "posix"},
    ),
    "macOS arm64": (
        [f"macosx_{major}_0_arm64" for major in (15, 14, 13, 12, 11)],
        {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64", "os_name": "posix"},
    ),
    "Windows x86-64": (
        ["win_amd64"],
        {"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64", "os_name": "nt"},
    ),
}
SHOWN = ("tensorflow", "tensorflow-cpu", "keras", "jaxlib", "dvc", "opencv-python-headless")


def requirements_for(environment, path=ROOT / "requirements.txt"):
    """The lines of requirements.txt that apply on `environment`, markers dropped."""
    kept = []
    for line in path.read_text().splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            requirement.marker = None
            kept.append(str(requirement))
    return kept


def resolve(name, tags, markers, wheels, scratch):
    environment = default_environment() | markers | {"python_version": PYTHON, "python_full_version": f"{PYTHON}.0"}
    requirements = Path(scratch) / f"{markers['platform_machine']}-{markers['sys_platform']}.txt"
    requirements.write_text("\n".join(requirements_for(environment)) + "\n")
    report = requirements.with_suffix(".json")
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--quiet",
        "--ignore-installed",
        "--only-binary=:all:",
        "--python-version",
        PYTHON,
        "--find-links",
        wheels,
        "--target",
        str(Path(scratch) / "target"),
        "--report",
        str(report),
        "-r",
        str(requirements),
    ]
    command += [argument for tag in tags for argument in ("--platform", tag)]
    result = subprocess.run(
        command, capture_output=True, text=True, env=os.environ | {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    )
    if result.returncode != 0:
        reason = next(
            (line for line in result.stderr.splitlines() if line.startswith("ERROR")), result.stderr.strip()[-300:]
        )
        print(f"{name}: does not resolve: {reason}")
        return False
    installed = {
        item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    shown = ", ".join(f"{package} {installed[package]}" for package in SHOWN if package in installed)
    print(f"{name} ({tags[0]}{' and older' if len(tags) > 1 else ''}): resolves, {len(installed)} packages: {shown}")
    return True


def main():
    with tempfile.TemporaryDirectory() as scratch:
        wheels = str(Path(scratch) / "wheels")
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", wheels, *SOURCE_ONLY], check=True
        )
        results = [resolve(name, tags, markers, wheels, scratch) for name, (tags, markers) in TARGETS.items()]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
