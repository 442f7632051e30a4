"""Static validation of the launch files, for what running them here cannot reach (the nodes of
other packages, gazebo.launch.xml): every executable, parameter file, parameter name, remapped
topic, argument and package file they use exists. test/launch/ runs them under `ros2 launch`."""

import importlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from catkin_pkg.package import parse_package

from timar_ros import topics

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.xml"))
ROS_BUILTIN_PARAMS = {"use_sim_time"}
# Executables of other packages the launch files may start: package -> executables.
EXTERNAL = {
    "robot_state_publisher": {"robot_state_publisher"},
    # gazebo.launch.xml
    "ros_gz_sim": {"create"},
    "ros_gz_bridge": {"parameter_bridge"},
    "controller_manager": {"spawner"},
}
SUBST = re.compile(r"\$\((\w[\w-]*) ([^()$]*)\)")  # innermost first


def _args(root):
    return {a.get("name"): a.get("default") for a in root.iter("arg")}


def _resolve(value: str, args: dict) -> str:
    """Substitute $(var X) with X's default and $(find-pkg-share timar_ros) with the checkout."""

    def sub(m):
        kind, what = m.group(1), m.group(2).strip()
        if kind == "var":
            assert what in args, f"$(var {what}) is not a declared <arg>"
            return args[what] if args[what] is not None else f"<required:{what}>"
        if kind == "find-pkg-share":
            assert what == "timar_ros" or what in EXTERNAL, f"unknown package {what}"
            return str(REPO)
        return m.group(0)

    for _ in range(3):  # nested substitutions
        value = SUBST.sub(sub, value)
    return value


def test_there_are_launch_files_for_robot_sim_and_bag_replay():
    names = {p.name for p in LAUNCH_FILES}
    assert {"robot.launch.xml", "sim.launch.xml", "bag_replay.launch.xml"} <= names


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_references_exist(path):
    root = ET.parse(path).getroot()
    assert root.tag == "launch"
    args = _args(root)
    for a in root.iter("arg"):
        assert a.get("description"), f"<arg {a.get('name')}> has no description"
    text = path.read_text()
    for m in SUBST.finditer(text):  # every $(var ...) anywhere is a declared arg
        if m.group(1) == "var":
            assert m.group(2).strip() in args, f"{path.name}: $(var {m.group(2)}) is not declared"
    exec_depends = {d.name for d in parse_package(str(REPO / "package.xml")).exec_depends}
    nodes = list(root.iter("node"))
    assert nodes
    for node in nodes:
        pkg, exe, name = node.get("pkg"), node.get("exec"), node.get("name")
        if pkg != "timar_ros":
            assert exe in EXTERNAL.get(pkg, set()), f"unknown executable {pkg}/{exe}"
            assert pkg in exec_depends, f"{pkg} is not an exec_depend in package.xml"
            for p in node.iter("param"):
                value = _resolve(p.get("value", ""), args)
                for cmd in re.findall(r"\$\(command 'cat ([^']+)'\)", value):
                    assert Path(cmd).is_file(), f"{path.name}: {cmd} does not exist"
            continue
        assert (REPO / "scripts" / exe).is_file(), f"no executable scripts/{exe}"
        module = importlib.import_module(f"timar_ros.nodes.{exe}")
        declared = set(module.PARAMS) | ROS_BUILTIN_PARAMS
        assert name == module.NAME, (
            f"{path.name}: node {exe} is named {name}, its parameters are under {module.NAME}"
        )
        for p in node.iter("param"):
            if p.get("from"):
                params_file = Path(_resolve(p.get("from"), args))
                assert params_file.is_file(), f"{path.name}: params file {params_file} missing"
                section = yaml.safe_load(params_file.read_text()).get(f"/**/{name}")
                assert section, f"{params_file.name} has no /**/{name} section"
                unknown = set(section["ros__parameters"]) - declared
                assert not unknown, (
                    f"{params_file.name} sets undeclared {name} parameters {unknown}"
                )
            else:
                assert p.get("name") in declared, (
                    f"{path.name}: {exe} has no parameter '{p.get('name')}'"
                )
                value = _resolve(p.get("value", ""), args)
                if "$(find-pkg-share" in p.get("value", "") and "<required:" not in value:
                    assert Path(value).exists(), f"{path.name}: {value} does not exist"
        for r in node.iter("remap"):
            assert r.get("from") in topics.TYPES, (
                f"{path.name}: {exe} has no topic '{r.get('from')}'"
            )
    for a, default in args.items():  # package files named by defaults exist
        if default and "$(find-pkg-share timar_ros)" in default:
            assert Path(_resolve(default, args)).exists(), (
                f"{path.name}: arg {a} -> missing {default}"
            )
