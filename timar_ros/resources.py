"""Where the package's data files (config/, launch/, urdf/, checkpoints/, data/) are.

One layout, three installs: in a source checkout they sit next to the timar_ros/ package; a ROS 2
install (colcon) puts them in share/timar_ros/ of its prefix, found through the ament index; and
`pip install .` puts the same share/timar_ros/ under the Python environment's data prefix
(``sysconfig``'s "data" path: the venv, or ~/.local for a user install).
"""

from __future__ import annotations

import sys
import sysconfig
from functools import cache
from pathlib import Path
from typing import Any

PACKAGE = "timar_ros"
DATA_DIRS = ("config", "launch", "urdf", "checkpoints", "data")
NODE_DEFAULTS = "timar.yaml"  # config/timar.yaml: every node parameter's default


def _pip_share_dirs() -> list[Path]:
    schemes = [sysconfig.get_default_scheme(), f"{sysconfig.get_preferred_scheme('user')}"]
    out = []
    for scheme in schemes:
        try:
            out.append(Path(sysconfig.get_path("data", scheme)) / "share" / PACKAGE)
        except KeyError:  # pragma: no cover - a scheme this Python does not have
            pass
    out.append(Path(sys.prefix) / "share" / PACKAGE)
    return out


@cache
def share_dir() -> Path:
    """The folder holding config/, launch/, urdf/, checkpoints/ and data/.

    Raises FileNotFoundError naming the places looked in and the fix when none has them.
    """
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "config").is_dir() and (checkout / "package.xml").is_file():
        return checkout
    tried = [checkout]
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        pass
    else:
        try:
            share = Path(get_package_share_directory(PACKAGE))
            if (share / "config").is_dir():
                return share
            tried.append(share)
        except (PackageNotFoundError, ValueError):
            pass
    for share in _pip_share_dirs():
        if (share / "config").is_dir():
            return share
        tried.append(share)
    raise FileNotFoundError(
        "timar_ros data files (config/, checkpoints/, ...) not found in "
        f"{', '.join(map(str, tried))}: "
        "run from a source checkout, `pip install .` from one (it installs them to "
        "share/timar_ros/), or build the package with colcon and source its setup file"
    )


def config_path(name: str) -> Path:
    """Path of a file in config/ (e.g. "timar.yaml")."""
    return share_dir() / "config" / name


@cache
def _node_defaults_file() -> dict[str, Any]:
    import yaml

    with open(config_path(NODE_DEFAULTS), encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def node_defaults(node_name: str) -> dict[str, Any]:
    """The ``ros__parameters`` of ``/**/<node_name>`` in config/timar.yaml (a flat dict): the one
    place node parameter defaults live (the nodes declare them from here)."""
    section = _node_defaults_file().get(f"/**/{node_name}")
    if section is None or "ros__parameters" not in section:
        raise KeyError(f"config/{NODE_DEFAULTS} has no '/**/{node_name}: ros__parameters:' section")
    return dict(section["ros__parameters"])
