"""Test-wide settings: DDS on loopback, a per-run domain, checked message fields."""

import os
import random
import signal
import sys
from pathlib import Path

# Set before rclpy is imported anywhere (by tests or by subprocesses that inherit the environment).
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
os.environ.setdefault("ROS_PYTHON_CHECK_FIELDS", "1")

# A suite started in the background by a non-interactive shell (`make test &`, nohup) inherits
# SIGINT ignored, and so would every process the tests start: the Ctrl-C tests would wait for an
# interrupt that never arrives. Catching it here makes the children start with the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Property tests (hypothesis). `make test` and CI load the "ci" profile: derandomized (the same
# examples on every machine and every run) and no example database, so a fresh clone passes or
# fails the same way every time. `make fuzz` loads "fuzz": random, many more examples, and a
# database under .hypothesis/ so that a failure it finds replays on the next run.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    max_examples=500,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    derandomize=False,
    max_examples=2000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("TIMAR_HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config, items):
    """Mark every hypothesis test `property`, so `make fuzz` can select them (-m property)."""
    import pytest

    for item in items:
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.property)


# ----------------------------------------------------------------------------- shared fixtures
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A randomly initialised checkpoint of the "tiny" preset (seed 0), shared read-only by the
    tests that need some checkpoint to run the pipeline, not particular weights."""
    from timar_ros.runtime.checkpoint import make_random_checkpoint

    return make_random_checkpoint("tiny", tmp_path_factory.mktemp("tiny_checkpoint") / "tiny")


@pytest.fixture
def ros_probe():
    """The test's own node on DDS (helpers.ros.RosProbe), closed after the test."""
    from helpers.ros import RosProbe

    probe = RosProbe()
    yield probe
    probe.close()


@pytest.fixture(scope="module")
def sound_server(tmp_path_factory):
    """A user-space PulseAudio with a null sink (timar_ros.demo.sound_server), this module's
    default output and input (PULSE_SERVER set here, so the processes tests start use it)."""
    from timar_ros.demo.sound_server import SoundServer

    why = SoundServer.missing()
    if why:
        pytest.skip(f"no sound server here: {why}")
    server = SoundServer(tmp_path_factory.mktemp("pulse")).start()
    yield server
    server.stop()
