"""The launch tests run `ros2 launch` for real: they need the `ros2` command line (skip, or fail
in CI, without it) and an install whose launch and config files are the checkout's."""

import os
import subprocess

import psutil
import pytest

from helpers.launch import installed_share, require_ros2, ros2, stale_installed_files


@pytest.fixture(scope="session")
def ros2_cli():
    """The `ros2` executable, after checking that `ros2 launch timar_ros ...` would run this
    checkout's launch and config files; the ros2 daemon the tests' `ros2` calls start is stopped
    at the end."""
    exe = require_ros2()
    stale = stale_installed_files(installed_share())
    assert not stale, (
        f"the installed timar_ros differs from the checkout in {stale}: run `make msgs` "
        "(make test does) to install them"
    )
    yield exe
    try:
        ros2("daemon", "stop", check=False, timeout=20.0)
    except subprocess.TimeoutExpired:
        # its DDS deadlocked (Fast DDS#6502): it cannot stop itself; end it so that the next
        # run's `ros2` starts a fresh one
        ours = f"--ros-domain-id {os.environ.get('ROS_DOMAIN_ID', '0')} "
        for p in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(p.info["cmdline"] or []) + " "
            if "ros2cli.daemon.daemonize" in cmd and ours in cmd:
                p.kill()
        print("the ros2 daemon did not stop within 20 s (a Fast DDS deadlock): killed")
