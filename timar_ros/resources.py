"""Where the package's data files (config/, launch/, urdf/, checkpoints/, data/) are.

In a source checkout they sit next to the timar_ros/ package; in a ROS 2 install (colcon) they are
installed to share/timar_ros/, found through the ament index.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

PACKAGE = "timar_ros"


@lru_cache(maxsize=None)
def share_dir() -> Path:
    """The folder holding config/, launch/, urdf/, checkpoints/ and data/."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "config").is_dir() and (checkout / "package.xml").is_file():
        return checkout
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise FileNotFoundError(
            "timar_ros data files not found: run from a source checkout, or install the package "
            "with colcon and source its setup file"
        ) from exc
    return Path(get_package_share_directory(PACKAGE))


def config_path(name: str) -> Path:
    """Path of a file in config/ (e.g. "timar.yaml")."""
    return share_dir() / "config" / name
