"""dvc.yaml lists, for each stage, every project module its command imports, so that no edit leaves a stale result."""

import ast

import pytest
import yaml
from pipeline_project import ROOT

# The helpers dvc.yaml's header declares result-neutral: editing them retrains nothing, and what
# they import (for their own checks) is not followed.
RESULT_NEUTRAL = {"cifarcam/core/errors.py", "cifarcam/core/files.py", "cifarcam/core/params.py"}
PROJECT_PACKAGES = ("cifarcam", "stages")
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def module_file(name):
    path = ROOT.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imported_names(path):
    """Every module an import statement of `path` names, at the top or inside a function."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def project_files(module):
    """The project's files that `python -m module` executes on import, packages' __init__ included."""
    found, pending = set(), [module]
    while pending:
        parts = pending.pop().split(".")
        if parts[0] not in PROJECT_PACKAGES:
            continue
        for depth in range(1, len(parts) + 1):
            file = module_file(".".join(parts[:depth]))
            relative = file.relative_to(ROOT).as_posix()
            if not file.is_file() or relative in found:
                continue
            found.add(relative)
            if relative not in RESULT_NEUTRAL:
                pending.extend(imported_names(file))
    return found - RESULT_NEUTRAL


def listed_code(stage):
    return {dep for dep in STAGES[stage].get("deps", []) if dep.split("/")[0] in PROJECT_PACKAGES}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_each_stage_lists_exactly_the_project_code_its_command_imports(stage):
    command = STAGES[stage]["cmd"].split()
    assert command[:2] == ["python", "-m"], f"{stage}: expected `python -m stages.<name>`"
    imported, listed = project_files(command[2]), listed_code(stage)
    assert not imported - listed, f"dvc.yaml: stage {stage} imports but does not list {sorted(imported - listed)}"
    assert not listed - imported, f"dvc.yaml: stage {stage} lists but never imports {sorted(listed - imported)}"


def test_the_walk_finds_imports_made_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from cifarcam import data\n    import cifarcam.explain.cam\n")
    assert set(imported_names(module)) == {"cifarcam", "cifarcam.data", "cifarcam.explain.cam"}
