"""Test-wide settings: DDS on loopback, a per-run domain, checked message fields."""
import os
import random
import sys
from pathlib import Path

# Set before rclpy is imported anywhere (by tests or by subprocesses that inherit the environment).
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
os.environ.setdefault("ROS_PYTHON_CHECK_FIELDS", "1")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
