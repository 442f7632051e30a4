"""Thin rclpy nodes over the ROS-free cores (one module per node, `python -m timar_ros.nodes.X`)."""
