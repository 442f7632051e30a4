"""timar_ros: TIMAR conversational head motion for ROS 2 social robot heads."""

# The generated message code (timar_ros.msg) and the hand-written modules may live in two
# directories (an installed prefix and a source checkout); let each extend the other.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

__version__ = "0.1.0"
