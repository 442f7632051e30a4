"""The `timar` command: help for every subcommand, and no heavy imports for `--help`."""
import subprocess
import sys

import pytest

from timar_ros.cli import COMMANDS


def _timar(*args):
    return subprocess.run([sys.executable, "-m", "timar_ros.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_top_level_help_lists_every_command_without_loading_torch():
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from timar_ros.cli import main\n"
         "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
         "print('TORCH' if 'torch' in sys.modules else 'NO_TORCH')"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for name in COMMANDS:
        assert name in out.stdout
    assert out.stdout.strip().endswith("NO_TORCH")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(command):
    out = _timar(command, "--help")
    assert out.returncode == 0, out.stderr
    assert f"usage: timar {command}" in out.stdout


def test_console_script_is_installed():
    exe = __import__("pathlib").Path(sys.prefix) / "bin" / "timar"
    assert exe.exists(), "the `timar` console script is not installed in this environment"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "usage: timar" in out.stdout
