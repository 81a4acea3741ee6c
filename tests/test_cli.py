"""The `cifarcam` command (pip install -e . installs it as a console script; `python -m cifarcam` is the same)."""

import subprocess
import sys

from pipeline_project import ROOT


def cifarcam(*args):
    return subprocess.run([sys.executable, "-m", "cifarcam", *args], cwd=ROOT, capture_output=True, text=True)


def test_help_lists_the_commands_without_loading_a_backend():
    code = "import sys; from cifarcam import cli; cli.main(['--help'])"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and {"predict", "sweep"} <= set(result.stdout.split())
    loaded = "import sys; from cifarcam import cli; print(sorted(set(sys.modules) & {'keras', 'tensorflow', 'jax'}))"
    assert subprocess.run([sys.executable, "-c", loaded], cwd=ROOT, capture_output=True, text=True).stdout == "[]\n"


def test_each_command_names_itself_in_its_usage_and_the_old_module_forms_still_work():
    assert cifarcam("predict", "--help").stdout.startswith("usage: cifarcam predict")
    assert cifarcam("sweep", "--help").stdout.startswith("usage: cifarcam sweep")
    for module in ("cifarcam.predict", "cifarcam.sweep"):
        old = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True)
        assert old.returncode == 0 and old.stdout.startswith("usage: cifarcam")


def test_an_unknown_or_missing_command_is_one_line_and_exit_status_2():
    unknown = cifarcam("train")
    assert unknown.returncode == 2
    assert unknown.stderr == "error: unknown command 'train': choose one of predict, sweep\n"
    assert cifarcam().returncode == 2
