"""``python -m timar_ros.cli`` = ``timar`` (e.g. under ``torchrun -m timar_ros.cli train ...``)."""

import sys

from timar_ros.cli import main

sys.exit(main())
