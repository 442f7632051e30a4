"""The launch tests run `ros2 launch` for real: they need the `ros2` command line (skip, or fail
in CI, without it) and an install whose launch and config files are the checkout's."""

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
    ros2("daemon", "stop", check=False)
