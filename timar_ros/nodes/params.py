"""Parameter declaration for the nodes, with config/timar.yaml as the one source of defaults.

Each node lists its parameters' descriptions (and optional ranges) in code; their default values
come from the node's section of config/timar.yaml, the same file users copy and edit for a robot.

When a value is read: most parameters are read once, when the node starts, so they are declared
read-only and `ros2 param set` is refused ("Trying to set a read-only parameter") instead of
appearing to succeed and changing nothing; `ros2 param describe` says how to change them. A
lifecycle node's parameters marked ``read_at=CONFIGURE`` are read in on_configure: the node itself
refuses a set while it is configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from timar_ros.resources import NODE_DEFAULTS as DEFAULTS_FILE
from timar_ros.resources import node_defaults

START = "start"  # read once when the node starts: read-only afterwards
CONFIGURE = "configure"  # read by a lifecycle node on configure: settable while unconfigured

_WHEN = {
    START: "read once at start-up (read-only): set it in the params file or with -p NAME:=VALUE "
    "and restart the node",
    CONFIGURE: "read on configure: set it while the node is unconfigured (clean it up first), "
    "then configure",
}


@dataclass(frozen=True)
class Param:
    """A node parameter: its description, an optional inclusive range (numbers only) and when
    the node reads it (START or CONFIGURE), or the values it may take (``choices``)."""

    description: str
    min: float | None = None
    max: float | None = None
    read_at: str = START
    choices: tuple | None = None  # the allowed values of a string parameter

    def __post_init__(self):
        if self.read_at not in _WHEN:
            raise ValueError(f"read_at must be one of {sorted(_WHEN)}, got {self.read_at!r}")


def overrides(values: dict[str, Any]):
    """``{"name": value}`` -> the ``parameter_overrides`` list a node's constructor takes."""
    from rclpy.parameter import Parameter

    return [Parameter(name, value=value) for name, value in values.items()]


def declare(node, node_name: str, specs: dict[str, Param]) -> dict[str, Any]:
    """Declare every parameter of `specs` on `node` with its default from config/timar.yaml.

    Returns the parameters' current values (after --params-file / -p overrides) as a dict.
    Raises KeyError if a spec has no default in the file or the file has a key with no spec.
    """
    defaults = node_defaults(node_name)
    unknown = set(defaults) - set(specs)
    if unknown:
        raise KeyError(
            f"config/{DEFAULTS_FILE} sets unknown parameters for {node_name}: {sorted(unknown)}"
        )
    values = {}
    for name, spec in specs.items():
        if name not in defaults:
            raise KeyError(f"config/{DEFAULTS_FILE} has no default for {node_name}.{name}")
        default = defaults[name]
        constraints = _WHEN[spec.read_at]
        if spec.choices:
            constraints = f"one of {', '.join(map(str, spec.choices))}; {constraints}"
        descriptor = ParameterDescriptor(
            description=spec.description,
            read_only=spec.read_at == START,
            additional_constraints=constraints,
        )
        if spec.min is not None and spec.max is not None:
            if isinstance(default, bool):
                pass
            elif isinstance(default, int):
                descriptor.integer_range = [
                    IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=0)
                ]
            elif isinstance(default, float):
                descriptor.floating_point_range = [
                    FloatingPointRange(
                        from_value=float(spec.min), to_value=float(spec.max), step=0.0
                    )
                ]
        node.declare_parameter(name, default, descriptor)
        values[name] = node.get_parameter(name).value
        problem = _choice_problem(name, spec, values[name])
        if problem:
            raise ValueError(problem)
    warn_stray_overrides(node, node_name)
    node.add_on_set_parameters_callback(lambda params: _check_choices(params, specs))
    return values


def _choice_problem(name: str, spec: Param, value) -> str | None:
    if spec.choices and value not in spec.choices:
        return f"{name} must be one of {', '.join(repr(c) for c in spec.choices)}, got {value!r}"
    return None


def _check_choices(params, specs: dict[str, Param]):
    from rcl_interfaces.msg import SetParametersResult

    for p in params:
        problem = _choice_problem(p.name, specs[p.name], p.value) if p.name in specs else None
        if problem:
            return SetParametersResult(successful=False, reason=problem)
    return SetParametersResult(successful=True)


def stray_overrides(node) -> list[str]:
    """Names set for ``node`` (params file, ``-p``, parameter_overrides) that it never declared."""
    overrides = getattr(node, "_parameter_overrides", None) or {}  # rclpy keeps them here
    return sorted(
        n for n in overrides if not n.startswith("qos_overrides.") and not node.has_parameter(n)
    )


def warn_stray_overrides(node, node_name: str) -> None:
    """rclpy ignores values for undeclared parameters without a word, so a typo in a robot's
    YAML would quietly keep the default: say so once, at start-up."""
    stray = stray_overrides(node)
    if stray:
        node.get_logger().warning(
            f"ignoring parameter(s) {stray}: {node_name} has no such parameter (a typo? its "
            f"parameters and defaults are in config/{DEFAULTS_FILE})"
        )
