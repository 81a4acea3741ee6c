"""The points of a `-S key=v1,v2 -S other=v3` grid, as `dvc exp run --queue` makes them, and a stable name for each.

The values are parsed by Hydra's override grammar, as DVC parses them, so that a sweep dispatched
elsewhere (cifarcam.sweep) expands exactly like the local queue: commas make a sweep, brackets a
list value (`train.widths=[8,16,16]`), `range(1,4)` and `choice(a,b)` work too. A point's name
depends only on its values, so submitting the same grid again finds the points already done.
"""

import hashlib
import itertools
import json

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from hydra.errors import HydraException

from cifarcam.core.errors import PipelineError

NAME_PREFIX = "sweep"


def _values(spec):
    """`key=v1,v2` (or `file.yaml:key=...`, as `dvc exp run -S` takes it) as (key, [value strings])."""
    key, equals, _ = spec.partition("=")
    path, colon, dotted = key.rpartition(":")
    if not equals or not dotted.strip():
        raise PipelineError(f"-S {spec!r}: expected key=value or key=v1,v2 (e.g. -S train.epochs=1,2)")
    try:
        (override,) = OverridesParser.create().parse_overrides([spec[len(path + colon) :]])
    except HydraException as error:
        reason = str(error).splitlines()[0]
        fix = "write key=v1,v2 for a sweep, key=[v1,v2] for a list"
        raise PipelineError(f"-S {spec!r} does not parse ({reason}): {fix}") from None
    if override.is_sweep_override():
        if not override.is_discrete_sweep() or override.value_type == ValueType.GLOB_CHOICE_SWEEP:
            raise PipelineError(f"-S {spec!r}: only lists of values and range()/choice() sweeps make a grid")
        values = list(override.sweep_string_iterator())
    else:
        values = [override.get_value_element_as_str()]
    return path + colon + override.get_key_element(), values


def points(specs):
    """Every combination of the specs' values, the first spec varying slowest: a list of {key: value string}."""
    if not specs:
        raise PipelineError("no -S given: name at least one parameter, e.g. -S train.learning_rate=0.001,0.01")
    axes = {}
    for spec in specs:
        key, values = _values(spec)
        if key in axes:
            raise PipelineError(f"-S {key} is given twice: put all its values in one -S {key}=v1,v2")
        axes[key] = values
    return [dict(zip(axes, combination, strict=True)) for combination in itertools.product(*axes.values())]


def experiment_name(point):
    """`sweep-<8 hex digits>`, from the point's sorted key/value pairs: the same point always gets the same name."""
    digest = hashlib.sha256(json.dumps(sorted(point.items())).encode()).hexdigest()
    return f"{NAME_PREFIX}-{digest[:8]}"


def set_param_args(point):
    """The point as `dvc exp run` arguments: ["-S", "key=value", ...]."""
    return [argument for key, value in point.items() for argument in ("-S", f"{key}={value}")]
