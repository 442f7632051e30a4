"""Pure-Python install of timar_ros (model, data, training, evaluation, offline tools).

`pip install .` gives the library and the `timar` command without ROS 2: training, evaluation,
metrics, ONNX export and the torch-free runtime. The ROS 2 nodes also need the generated message
code, which the ament_cmake build (colcon, or `make`) produces; see the README.
"""
from setuptools import find_packages, setup

setup(
    name="timar-ros",
    version="0.1.0",
    description="TIMAR causal turn-level conversational head motion for ROS 2 robot heads",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["timar_ros", "timar_ros.*"]),
    include_package_data=True,
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
        "robot": ["sounddevice>=0.4", "webrtcvad-wheels>=2.0.14"],
    },
    entry_points={"console_scripts": ["timar = timar_ros.cli:main"]},
)
