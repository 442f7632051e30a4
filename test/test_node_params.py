"""Every node's parameters: described, defaulted in config/timar.yaml (the one source), in range."""
import importlib
from pathlib import Path

import pytest

from timar_ros.nodes.params import node_defaults

NODES = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "timar_ros" / "nodes").glob("*.py")
               if "PARAMS = {" in p.read_text())


def test_all_nodes_found():
    assert {"microphone", "audio_file_player", "conversation_policy", "head_retargeter",
            "bag_player", "bag_recorder"} <= set(NODES)


@pytest.mark.parametrize("name", NODES)
def test_parameters_are_documented_and_defaulted(name):
    module = importlib.import_module(f"timar_ros.nodes.{name}")
    defaults = node_defaults(module.NAME)
    assert set(defaults) == set(module.PARAMS), "config/timar.yaml and the node's PARAMS differ"
    for key, spec in module.PARAMS.items():
        assert len(spec.description) > 10, f"{name}.{key} needs a description"
        value = defaults[key]
        if spec.min is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            assert spec.min <= value <= spec.max, f"{name}.{key} default {value} outside [{spec.min}, {spec.max}]"
