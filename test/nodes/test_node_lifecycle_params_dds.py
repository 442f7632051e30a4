"""Lifecycle and parameters of a real head_retargeter process over DDS: configure -> cleanup ->
configure leaves exactly one subscription (each block is played once); `ros2 param set` of a
start-up parameter is refused as read-only, of a configure-time parameter refused while configured
and applied by the next configure; malformed HeadMotion is counted and logged once per period."""

import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient

from helpers.ros import Lifecycle, call, spin_until, start_python, stop
from timar_ros.msg import HeadMotion
from timar_ros.nodes.convert import head_motion

NS = "/cycle"
NODE = f"{NS}/head_retargeter"


def test_lifecycle_cycle_and_parameter_sets_on_a_real_retargeter(tmp_path, ros_probe):
    proc = start_python(
        [
            "-m",
            "timar_ros.nodes.head_retargeter",
            "--ros-args",
            "-r",
            f"__ns:={NS}",
            "-p",
            "autostart:=false",
        ]
    )
    node = ros_probe.node
    reliable = ros_probe.qos(100)
    pub = node.create_publisher(HeadMotion, f"{NS}/head_motion", reliable)
    diag = []
    node.create_subscription(DiagnosticArray, "/diagnostics", diag.append, 10)
    lifecycle = Lifecycle(node, NODE)
    transition = lifecycle.transition
    params = AsyncParameterClient(node, NODE)

    def set_param(name, value):
        answer = call(node, lambda: params.set_parameters([Parameter(name, value=value)]))
        assert answer is not None, "no answer from the head_retargeter's set_parameters"
        return answer.results[0]

    try:
        assert lifecycle.wait(60), stop(proc)
        assert params.wait_for_services(timeout_sec=30)
        # Unconfigured: a configure-time parameter can be set; a start-up one never.
        r = set_param("joint_state_frame_id", "head")
        assert not r.successful and "read-only" in r.reason, r.reason
        r = set_param("command_interface", "servo_bus")
        assert (
            not r.successful
            and "command_interface must be one of 'forward', 'trajectory', 'none'" in r.reason
        )
        missing = tmp_path / "no_such_robot.yaml"
        assert set_param("retarget_config", str(missing)).successful
        assert transition(Transition.TRANSITION_CONFIGURE) is False  # the new value was used
        assert set_param("retarget_config", "").successful
        assert transition(Transition.TRANSITION_CONFIGURE)
        r = set_param("retarget_config", str(missing))
        assert not r.successful and "read on configure" in r.reason and "clean it up" in r.reason, (
            r.reason
        )
        # configure -> cleanup -> configure: the handles of the first configure are gone.
        assert transition(Transition.TRANSITION_CLEANUP)
        assert transition(Transition.TRANSITION_CONFIGURE)
        assert transition(Transition.TRANSITION_ACTIVATE)
        assert spin_until(node, lambda: pub.get_subscription_count() >= 1, 30)
        time.sleep(0.5)  # let discovery settle: a stale second subscription would show up too
        assert pub.get_subscription_count() == 1
        pub.publish(head_motion(np.zeros((25, 56), np.float32), time.time() + 0.2, 0, "cycle"))
        bad = head_motion(np.zeros((25, 56), np.float32), time.time(), 1, "cycle")
        bad.num_frames = 30  # fields do not match: malformed
        for _ in range(20):  # spaced: the node's subscription keeps the last 10
            pub.publish(bad)
            spin_until(node, lambda: False, 0.02)

        def counters():
            ours = [
                s
                for d in diag
                for s in d.status
                if s.name.endswith("head_retargeter: servo commands")
            ]
            return {kv.key: kv.value for kv in ours[-1].values} if ours else {}

        assert spin_until(node, lambda: counters().get("malformed_blocks") == "20", 30), counters()
        assert counters()["blocks"] == "1"  # played once, not once per configure
    finally:
        log = stop(proc)
    assert log.count("ignoring malformed HeadMotion") == 1, log  # rate-limited, the rest counted
    assert "Traceback" not in log, log
