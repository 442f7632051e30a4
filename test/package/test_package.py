"""The package is a real ROS 2 package: package.xml, a colcon build, installed executables."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

REPO = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)


def test_package_xml_is_format_3_ament_cmake():
    pkg = parse_package(str(REPO / "package.xml"))
    pkg.validate()
    assert pkg.package_format == 3 and pkg.name == "timar_ros"
    assert pkg.get_build_type() == "ament_cmake"
    deps = {d.name for d in pkg.exec_depends + pkg.build_depends + pkg.buildtool_depends}
    for needed in (
        "rclpy",
        "rosidl_default_generators",
        "rosidl_default_runtime",
        "sensor_msgs",
        "geometry_msgs",
        "trajectory_msgs",
        "diagnostic_msgs",
    ):
        assert needed in deps
    assert "rosidl_interface_packages" in {g.name for g in pkg.member_of_groups}


def test_every_node_has_an_installed_executable():
    # `ros2 run timar_ros <node>` and launch_ros find executables in lib/timar_ros/, which CMake
    # fills from scripts/. Every node module must have one, and it must call the node's main().
    nodes = [
        p.stem for p in (REPO / "timar_ros" / "nodes").glob("*.py") if "def main(" in p.read_text()
    ]
    assert nodes
    for node in nodes:
        script = REPO / "scripts" / node
        assert script.is_file(), f"scripts/{node} is missing"
        assert os.access(script, os.X_OK), f"scripts/{node} is not executable"
        assert f"timar_ros.nodes.{node} import main" in script.read_text()


@pytest.mark.slow
def test_colcon_build_of_a_workspace(tmp_path):
    """A ROS 2 user's `colcon build` (no Makefile) installs messages, modules, data, executables."""
    colcon = VENV / "bin" / "colcon"
    if not colcon.exists():
        pytest.skip("colcon is not installed in this environment")
    src = tmp_path / "ws" / "src" / "timar_ros"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    env = dict(os.environ, PATH=f"{VENV / 'bin'}:{os.environ['PATH']}")
    env.pop("AMENT_PREFIX_PATH", None)
    ws = tmp_path / "ws"
    build = subprocess.run(
        [str(colcon), "build", "--cmake-args", "-DBUILD_TESTING=OFF", "-DCMAKE_BUILD_TYPE=Release"],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    prefix = ws / "install" / "timar_ros"
    site = (
        prefix
        / "lib"
        / f"python{sys.version_info.major}.{sys.version_info.minor}"
        / "site-packages"
    )
    assert (prefix / "lib" / "timar_ros" / "audio_file_player").is_file()
    assert (prefix / "share" / "timar_ros" / "config" / "timar.yaml").is_file()
    probe = (
        "import timar_ros.nodes.audio_file_player as n, timar_ros.msg as m, timar_ros.resources "
        "as r;"
        "print(n.__file__); print(m.__file__); print(r.share_dir())"
    )
    env = dict(os.environ, PYTHONPATH=str(site), AMENT_PREFIX_PATH=f"{prefix}:{VENV}")
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    node_file, msg_file, share = out.stdout.split()
    assert node_file.startswith(str(site)) and msg_file.startswith(str(site))
    assert Path(share) == prefix / "share" / "timar_ros"


@pytest.mark.slow
def test_pip_install_finds_the_config_and_the_bundled_checkpoint(tmp_path):
    """`pip install .` (no checkout, no ROS) installs config/ and checkpoints/ to share/timar_ros/
    of the environment, where timar_ros.resources finds them."""
    src = tmp_path / "src"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            *map(str, wheels.glob("*.whl")),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    probe = (
        "from timar_ros.resources import config_path, share_dir; import json; "
        "s = share_dir(); print(s); print(config_path('timar.yaml').is_file()); "
        "print(json.load(open(s / 'checkpoints/robot/config.json'))['d_model']); "
        "print((s / 'checkpoints/robot/model.safetensors').stat().st_size)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH")}
    r = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    share, has_yaml, d_model, size = r.stdout.split()
    assert Path(share) == venv / "share" / "timar_ros"
    assert has_yaml == "True" and int(d_model) > 0
    assert int(size) == (REPO / "checkpoints/robot/model.safetensors").stat().st_size
    assert not list((venv / "share" / "timar_ros").rglob("*.onnx"))
    # Nothing there: the error names the places looked in and the fix.
    shutil.rmtree(venv / "share" / "timar_ros")
    r = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert (
        r.returncode == 1
        and "timar_ros data files (config/, checkpoints/, ...) not found" in r.stderr
    )
    assert "`pip install .` from one" in r.stderr


def test_the_declared_license_is_in_the_repository():
    """package.xml and setup.py say Apache-2.0: the repository carries its text."""
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    pkg = parse_package(str(REPO / "package.xml"))
    assert [str(lic) for lic in pkg.licenses] == ["Apache-2.0"]
    assert 'license="Apache-2.0"' in (REPO / "setup.py").read_text()
