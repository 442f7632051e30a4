"""The rules of the house (DESIGN.md): the ROS-free cores never import rclpy or the CLI, and the
torch-free runtime never imports torch. Checked by importing every module of a layer in a fresh
interpreter and looking at what got loaded."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "timar_ros"
ROS_FREE = ["model", "data", "training", "eval", "runtime", "robot", "bags", "viz"]
ROS_ONLY = {"timar_ros.eval.bag_live"}  # bag evaluation's --live mode runs the nodes


def _modules(*folders: str) -> list[str]:
    out = []
    for folder in folders:
        for f in sorted((PKG / folder).rglob("*.py")):
            name = ".".join(f.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            if name not in ROS_ONLY:
                out.append(name)
    return out


def _loaded_after_import(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n    importlib.import_module(m)\n"
        "top = lambda m: m if m.startswith('timar_ros') else m.split('.')[0]\n"
        f"print(sorted({{top(m) for m in sys.modules if m.startswith({prefixes!r})}}))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    return eval(r.stdout.strip())  # noqa: S307 - our own printed list


@pytest.mark.parametrize("layer", ROS_FREE)
def test_ros_free_layers_import_neither_rclpy_nor_the_cli(layer):
    mods = _modules(layer)
    assert mods
    loaded = _loaded_after_import(
        mods, ("rclpy", "rcl_interfaces", "timar_ros.cli", "timar_ros.nodes")
    )
    assert loaded == [], f"{layer} imports {loaded}"


def test_the_onnx_runtime_imports_no_torch():
    mods = [
        "timar_ros.runtime",
        "timar_ros.runtime.onnx_policy",
        "timar_ros.runtime.onnx_format",
        "timar_ros.runtime.checkpoint",
        "timar_ros.robot.policy_setup",
        "timar_ros.model.config",
        "timar_ros.model.token_layout",
    ]
    assert _loaded_after_import(mods, ("torch",)) == []
