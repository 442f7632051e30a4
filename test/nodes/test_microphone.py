"""microphone: a managed node that refuses to configure without a usable device, saying why."""

import numpy as np
from lifecycle_msgs.msg import Transition

from helpers.ros import Lifecycle, start_python, stop
from timar_ros.nodes.microphone import to_mono_chunk


def test_mono_downmix_and_gain_clip():
    block = np.array([[0.2, 0.4], [0.9, 0.9], [-1.0, -0.6]], dtype=np.float32)
    np.testing.assert_allclose(to_mono_chunk(block, 2.0), [0.6, 1.0, -1.0])


def test_configure_without_a_device_fails_with_the_fix(ros_probe):
    node = ros_probe.node
    proc = start_python(
        [
            "-m",
            "timar_ros.nodes.microphone",
            "--ros-args",
            "-r",
            "__ns:=/mic_test",
            "-p",
            "device:=no_such_device_xyz",
        ]
    )
    try:
        microphone = Lifecycle(node, "/mic_test/microphone")
        assert microphone.wait(20), "lifecycle services did not appear"
        assert microphone.transition(Transition.TRANSITION_CONFIGURE, 20) is False
        assert microphone.state() == "unconfigured"
    finally:
        out = stop(proc)
    # Either PortAudio is missing (fresh machine) or the device does not exist: both name the fix.
    assert ("apt install libportaudio2" in out) or ("set the 'device' parameter" in out), out
