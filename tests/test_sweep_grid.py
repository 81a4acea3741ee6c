"""The -S grid of a Slurm sweep: the points `dvc exp run --queue` would make, stable names, one-line errors."""

import pytest

from cifarcam.core.errors import PipelineError
from cifarcam.scale.grid import experiment_name, points, set_param_args
from cifarcam.scale.slurm import job_script


def test_comma_separated_values_make_the_cartesian_product_first_spec_slowest():
    assert points(["train_rgb.learning_rate=0.001,0.01", "train_rgb.batch_size=64,128"]) == [
        {"train_rgb.learning_rate": "0.001", "train_rgb.batch_size": "64"},
        {"train_rgb.learning_rate": "0.001", "train_rgb.batch_size": "128"},
        {"train_rgb.learning_rate": "0.01", "train_rgb.batch_size": "64"},
        {"train_rgb.learning_rate": "0.01", "train_rgb.batch_size": "128"},
    ]


def test_lists_ranges_choices_and_file_prefixes_parse_as_dvc_parses_them():
    assert points(["train_rgb.widths=[8,16,16]", "train_rgb.epochs=range(1,4)"]) == [
        {"train_rgb.widths": "[8,16,16]", "train_rgb.epochs": str(epochs)} for epochs in (1, 2, 3)
    ]
    assert points(["train_rgb.arch=choice(cnn,airbench)"]) == [{"train_rgb.arch": arch} for arch in ("cnn", "airbench")]
    assert points(["params.yaml:train_rgb.epochs=1,2"]) == [
        {"params.yaml:train_rgb.epochs": "1"},
        {"params.yaml:train_rgb.epochs": "2"},
    ]


def test_names_are_stable_distinct_and_independent_of_the_order_of_the_specs():
    specs = ["train_rgb.learning_rate=0.001,0.01", "train_rgb.epochs=1,2"]
    names = [experiment_name(point) for point in points(specs)]
    assert len(set(names)) == 4 and all(name.startswith("sweep-") and len(name) == 14 for name in names)
    assert names == [experiment_name(point) for point in points(list(specs))]
    swapped = points(["train_rgb.epochs=1,2", "train_rgb.learning_rate=0.001,0.01"])
    assert sorted(experiment_name(point) for point in swapped) == sorted(names)


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([], "no -S given: name at least one parameter"),
        (["train_rgb.epochs"], "-S 'train_rgb.epochs': expected key=value or key=v1,v2"),
        (["=1,2"], "-S '=1,2': expected key=value"),
        (["train_rgb.epochs=1", "train_rgb.epochs=2"], "-S train_rgb.epochs is given twice: put all its values in one"),
        (["train_rgb.widths=[8,16"], "-S 'train_rgb.widths=[8,16' does not parse"),
        (["train_rgb.dropout=interval(0,1)"], "only lists of values and range()/choice() sweeps make a grid"),
        (["train_rgb.arch=glob(*)"], "only lists of values and range()/choice() sweeps make a grid"),
    ],
)
def test_bad_specs_are_refused_in_one_line_naming_the_spec_and_the_fix(specs, message):
    with pytest.raises(PipelineError) as refused:
        points(specs)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_the_job_script_runs_each_point_with_its_name_and_quoted_values(tmp_path):
    tasks = [(experiment_name(point), point) for point in points(["train_rgb.widths=[8,16]", "train_rgb.epochs=1,2"])]
    script = job_script("/srv/origin.git", "ab" * 20, tasks, tmp_path)
    assert f"  0) name={tasks[0][0]}; params=(-S 'train_rgb.widths=[8,16]' -S train_rgb.epochs=1) ;;" in script
    assert f"  1) name={tasks[1][0]}; params=(-S 'train_rgb.widths=[8,16]' -S train_rgb.epochs=2) ;;" in script
    assert set_param_args(tasks[1][1]) == ["-S", "train_rgb.widths=[8,16]", "-S", "train_rgb.epochs=2"]
    # the experiment's git ref is pushed last, after its outputs, so that a killed task leaves no experiment behind
    push_outputs, push_ref = script.index("dvc push -q"), script.index("dvc exp push -q --no-cache origin")
    assert script.index("dvc exp run -n") < push_outputs < push_ref < script.index('echo "sweep: $name pushed')
