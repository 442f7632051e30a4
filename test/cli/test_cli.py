"""The `timar` command: help for every subcommand, and no heavy imports for `--help`."""

import subprocess
import sys

import pytest

from timar_ros.cli import COMMANDS


def _timar(*args):
    return subprocess.run(
        [sys.executable, "-m", "timar_ros.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_top_level_help_lists_every_command_without_loading_torch():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from timar_ros.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO_TORCH')",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
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


@pytest.mark.parametrize(
    "args",
    [
        ["demo", "--checkpoint", "{missing}"],
        ["export", "{missing}", "{tmp}/onnx"],
        ["evaluate", "--checkpoint", "{missing}", "--data", "{missing}"],
        ["metrics", "{missing}", "{missing}"],
        ["render", "{missing}", "{tmp}/out.png"],
        ["train", "--data", "{missing}", "--out", "{tmp}/run"],
        ["bag", "info", "{missing}"],
        ["bag", "evaluate", "{missing}"],
        ["soak", "--minutes", "0", "--json", "{tmp}/soak.json"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_bad_input_is_one_clear_line_not_a_traceback(args, tmp_path, capsys):
    from timar_ros.cli import main

    missing = tmp_path / "no_such_thing"
    rc = main([a.format(missing=missing, tmp=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert rc != 0
    assert f"timar {args[0]}" in err and ("no_such_thing" in err or "--minutes" in err), err
