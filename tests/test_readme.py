"""The README's front page states the committed run's results and the pipeline as dvc.yaml has it."""

import json
import re

import yaml
from pipeline_project import ROOT

from cifarcam.core.names import model_labels
from cifarcam.core.params import recipes
from cifarcam.study import tables

README = (ROOT / "README.md").read_text()


def test_the_headline_table_is_the_committed_runs_as_the_table_builder_writes_it():
    block = re.search(r"<!-- headline:([^\n]*)-->\n(.*?)\n<!-- /headline -->", README, re.DOTALL)
    assert block, "README.md: the headline table's markers are missing"
    command = re.search(r"`(python -m cifarcam\.study\.tables[^`]*)`", block.group(1)).group(1)
    seeds = re.search(r"--seeds (\S+)", command)
    metrics = json.loads((ROOT / "reports/metrics.json").read_text())
    seed_study = json.loads((ROOT / seeds.group(1)).read_text()) if seeds else None
    expected = tables.headline(metrics, model_labels(recipes(ROOT / "params.yaml")), seed_study)
    assert block.group(2) == expected, f"README.md's headline is stale: paste `{command}` there"


def test_the_readme_is_a_few_screens_whose_diagram_names_every_stage():
    assert len(README.splitlines()) <= 250
    diagram = next(block for block in README.split("```")[1::2] if block.startswith("\ndownload →"))
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert all(re.search(rf"\b{stage}\b", diagram) for stage in stages), diagram
