"""Read one stage's section of params.yaml."""

from pathlib import Path

import yaml

from cifarcam.errors import PipelineError


def load_section(section, path="params.yaml"):
    try:
        params = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path} not found: run the stage from the repository root") from None
    except yaml.YAMLError as error:
        raise PipelineError(f"{path} is not valid YAML: {_one_line(error)}") from None
    if not isinstance(params, dict) or not isinstance(params.get(section), dict):
        raise PipelineError(f"{path} has no '{section}' section: restore it from git")
    return params[section]


def _one_line(error):
    return " ".join(str(error).split())
