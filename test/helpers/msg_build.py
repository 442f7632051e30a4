"""Build a ROS 2 interface package from message definitions in a temporary workspace, the same
CMake path our own messages take (rosidl_generate_interfaces with the venv as the underlay), and
give the environment a process needs to use it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PACKAGE_XML = """<?xml version="1.0"?>
<package format="3">
  <name>{name}</name>
  <version>0.0.0</version>
  <description>{name}, built from its published message definitions for a test</description>
  <maintainer email="test@example.com">test</maintainer>
  <license>Apache-2.0</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>std_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
"""

# The wheels' quirks are handled as in our own CMakeLists.txt (see the comments there).
CMAKELISTS = """cmake_minimum_required(VERSION 3.16)
project({name})
find_package(ament_cmake REQUIRED)
if(NOT DEFINED ENV{{AMENT_PREFIX_PATH}})
  get_filename_component(_ros_prefix "${{ament_cmake_DIR}}/../../.." ABSOLUTE)
  set(ENV{{AMENT_PREFIX_PATH}} "${{_ros_prefix}}")
endif()
find_package(rosidl_default_generators REQUIRED)
find_package(std_msgs REQUIRED)
rosidl_generate_interfaces(${{PROJECT_NAME}} {files} DEPENDENCIES std_msgs)
ament_export_dependencies(rosidl_default_runtime)
ament_package()
get_property(_imported DIRECTORY PROPERTY IMPORTED_TARGETS)
foreach(_t IN LISTS _imported)
  get_target_property(_inc ${{_t}} INTERFACE_INCLUDE_DIRECTORIES)
  if(_inc)
    list(FILTER _inc EXCLUDE REGEX "^/opt/python/")
    set_target_properties(${{_t}} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${{_inc}}")
  endif()
endforeach()
"""


def build_interface_package(root: Path, name: str, messages: dict[str, str]) -> Path:
    """Write ``name`` with ``messages`` ({"AudioInfo": "<definition>"}) under ``root``, build and
    install it; returns the install prefix."""
    venv = Path(sys.prefix)
    src, build, prefix = root / "src" / name, root / "build", root / "install"
    (src / "msg").mkdir(parents=True)
    for msg, text in messages.items():
        (src / "msg" / f"{msg}.msg").write_text(text.strip() + "\n")
    files = " ".join(f'"msg/{m}.msg"' for m in messages)
    (src / "package.xml").write_text(PACKAGE_XML.format(name=name))
    (src / "CMakeLists.txt").write_text(CMAKELISTS.format(name=name, files=files))
    env = dict(os.environ, PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    env["AMENT_PREFIX_PATH"] = str(venv)
    steps = [
        [
            "cmake",
            "-S",
            str(src),
            "-B",
            str(build),
            "-G",
            "Ninja",
            f"-DCMAKE_INSTALL_PREFIX={prefix}",
            "-DBUILD_TESTING=OFF",
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DPython3_EXECUTABLE={sys.executable}",
        ],
        ["cmake", "--build", str(build)],
        ["cmake", "--install", str(build)],
    ]
    for cmd in steps:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return prefix


def package_env(prefix: Path) -> dict[str, str]:
    """Environment additions so a child process can import and use the installed package."""
    site = next((prefix / "lib").glob("python3*/site-packages"))
    venv = Path(sys.prefix)

    def join(*parts, var):
        return os.pathsep.join([*map(str, parts), os.environ.get(var, "")]).rstrip(os.pathsep)

    return {
        "PYTHONPATH": join(site, var="PYTHONPATH"),
        "LD_LIBRARY_PATH": join(prefix / "lib", var="LD_LIBRARY_PATH"),
        "AMENT_PREFIX_PATH": join(prefix, venv, var="AMENT_PREFIX_PATH"),
    }
