"""A physics simulation of the head behind the same interfaces a real head has (ros2_control's
position controllers in, measured joint states out): the URDF in MuJoCo with servo-like
position actuators (:mod:`.head`), its config (:mod:`.config`), the command checks and the
trajectory follower (:mod:`.commands`) and the tracking figures of commanded vs simulated
positions (:mod:`.tracking`). ROS-free; the node is :mod:`timar_ros.nodes.sim_head`.
MuJoCo (pip ``mujoco``) is imported only by :mod:`.head`."""
