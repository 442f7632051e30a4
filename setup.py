"""Pure-Python install of timar_ros (model, data, training, evaluation, offline tools).

`pip install .` gives the library and the `timar` command without ROS 2: training, evaluation,
metrics, ONNX export and the torch-free runtime. The ROS 2 nodes also need the generated message
code, which the ament_cmake build (colcon, or `make`) produces; see the README.
"""

from pathlib import Path

from setuptools import find_packages, setup

# The package's data files go to share/timar_ros/ of the environment, the same layout a ROS 2
# install has (timar_ros.resources finds both). ONNX exports are made on first use, not shipped.
from timar_ros.resources import DATA_DIRS  # stdlib only: the one list of the data folders


def _data_files():
    out = {}
    for top in DATA_DIRS:
        for f in sorted(Path(top).rglob("*")):
            if f.is_file() and "onnx" not in f.parts and "__pycache__" not in f.parts:
                out.setdefault(str(Path("share/timar_ros") / f.parent), []).append(str(f))
    return sorted(out.items())


setup(
    name="timar-ros",
    version="0.1.0",
    description="TIMAR causal turn-level conversational head motion for ROS 2 robot heads",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    python_requires=">=3.10",
    packages=find_packages(include=["timar_ros", "timar_ros.*"]),
    include_package_data=True,
    data_files=_data_files(),
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "PyYAML>=6.0",
        "soundfile>=0.12",
        "safetensors>=0.4",
        "onnxruntime>=1.17",
        "rosbags>=0.10",
        "scikit-learn>=1.3",
        "matplotlib>=3.7",
        "tqdm>=4.60",
    ],
    extras_require={
        # torch is left to the user so that the right build (CPU or CUDA) is chosen explicitly.
        "torch": ["torch>=2.1"],
        "export": ["onnx>=1.15", "onnxscript>=0.1"],
        "wav2vec2": ["transformers>=4.40"],
        "robot": ["sounddevice>=0.4", "webrtcvad-wheels>=2.0.14", "livekit>=1.2"],
        "echo-bench": ["pyroomacoustics>=0.7", "pystoi>=0.4"],
        "sim": ["mujoco>=3.2"],
    },
    entry_points={"console_scripts": ["timar = timar_ros.cli:main"]},
)
