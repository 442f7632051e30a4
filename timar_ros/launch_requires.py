"""What a launch file needs from outside this package, checked before it starts anything.

`ros2 launch` evaluates a launch file's actions in order and starts each process as it goes; a
package that turns out to be missing half way (``package 'X' not found``) aborts the launch with
the processes already started left running without it. A launch file that needs other packages
calls :func:`require` first (through ``$(eval ...)``), so that it fails at once, before any process
starts, naming everything missing and how to install it.
"""

from __future__ import annotations

import os
import shutil


def require(launch_file: str, packages: str, executables: str = "") -> str:
    """Raise RuntimeError naming the ROS 2 ``packages`` (space-separated) and ``executables``
    (on PATH) that are not installed; return "" (a launch substitution's value) when all are."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    def installed(package: str) -> bool:
        try:
            get_package_prefix(package)
        except (PackageNotFoundError, ValueError, KeyError, OSError):
            return False
        return True

    missing = [p for p in packages.split() if not installed(p)]
    missing_exe = [e for e in executables.split() if shutil.which(e) is None]
    if not missing and not missing_exe:
        return ""
    distro = os.environ.get("ROS_DISTRO") or "<distro>"
    parts = []
    if missing:
        parts.append(f"ROS 2 packages {', '.join(missing)}")
    if missing_exe:
        parts.append(f"executables {', '.join(missing_exe)} on PATH")
    debs = " ".join(f"ros-{distro}-{p.replace('_', '-')}" for p in missing)
    raise RuntimeError(
        f"{launch_file} cannot start: missing {' and '.join(parts)}. Nothing was started."
        + (
            f" Install them (on Debian/Ubuntu: apt install {debs}) and source the ROS 2 setup."
            if debs
            else ""
        )
    )
