"""The per-turn token layout and the turn-level band mask are what the paper/reference specify."""

import numpy as np
import pytest
import torch

from helpers.model import one_thread_module  # noqa: E402,F401
from timar_ros.model.backbone import attention_plan
from timar_ros.model.config import PRESETS, TIMARConfig, preset
from timar_ros.model.token_layout import DELIMITERS, TurnLayout


def test_layout_f25_matches_reference_positions():
    L = TurnLayout(25)
    assert L.tokens_per_turn == 110 and L.samples_per_turn == 16000
    # reference (model/timar.py): delimiters at 0,1,27,28,54,55,81,82,108,109
    assert L.delimiter_positions.tolist() == [0, 1, 27, 28, 54, 55, 81, 82, 108, 109]
    assert L.segment("user_speech") == slice(2, 27)
    assert L.segment("user_motion") == slice(29, 54)
    assert L.segment("agent_speech") == slice(56, 81)
    assert L.segment("agent_motion") == slice(83, 108)
    assert len(DELIMITERS) == 10 and DELIMITERS[0] == "<TURN>" and DELIMITERS[-1] == "<TURN/>"
    # every position is exactly one thing
    kinds = L.kinds
    assert (kinds == 0).sum() == 10 and all((kinds == k).sum() == 25 for k in (1, 2, 3, 4))
    assert L.user_mask.sum() == 50 and L.agent_motion_mask.sum() == 25
    assert len(L.encoder_positions) == 85
    # an 8-turn window is the reference's 880 tokens
    assert len(L.turn_ids(8)) == 880


@pytest.mark.parametrize("F", [10, 25, 1])
def test_layout_other_turn_lengths(F):
    L = TurnLayout(F)
    assert L.tokens_per_turn == 4 * F + 10 and L.samples_per_turn == 640 * F
    covered = np.zeros(L.tokens_per_turn, int)
    covered[L.delimiter_positions] += 1
    for name in ("user_speech", "user_motion", "agent_speech", "agent_motion"):
        covered[L.segment(name)] += 1
    assert (covered == 1).all()


def test_band_mask_turn_causal_window():
    L = TurnLayout(2)  # 18 tokens per turn
    T, W, S = L.tokens_per_turn, 3, 6
    m = L.band_mask(S, W)
    turn = L.turn_ids(S)
    for q in range(0, S * T, 5):
        for k in range(S * T):
            tq, tk = turn[q], turn[k]
            assert m[q, k] == (tq - W < tk <= tq)
    # bidirectional inside a turn, incl. delimiters
    assert m[:T, :T].all()
    # W >= S: the reference's TLCA (k visible iff turn(k) <= turn(q))
    full = L.band_mask(S, S)
    assert (full == (turn[None, :] <= turn[:, None])).all()


def test_attention_plan_chunks_equal_full_mask():
    turn = torch.arange(20).repeat_interleave(3)
    W = 4
    full = attention_plan(turn, turn, W, None)
    assert len(full) == 1
    chunks = attention_plan(turn, turn, W, 4)
    assert len(chunks) == 5
    # 4-D masks keep CPU attention on its fused kernel (a 3-D mask falls back to the math path)
    assert all(m.dim() == 4 for _, _, m in full + chunks)
    ref = full[0][2][0, 0]
    for qs, ks, m in chunks:
        assert torch.equal(m[0, 0], ref[qs, ks])
        # every key the query may see lies inside the key slice
        assert ref[qs].sum() == m.sum()
    bi = attention_plan(turn, turn, None, 4)
    assert bi[0][2].all() and bi[0][2].dim() == 4


def test_config_json_roundtrip_and_presets(tmp_path):
    c = preset("robot")
    c.save(tmp_path / "c.json")
    assert TIMARConfig.load(tmp_path / "c.json") == c
    assert c.frames_per_turn == 25 and c.window_turns == 8 and c.num_sampling_steps == 5
    assert c.cfg_drop_prob == 0.1 and c.mask_ratio_min == 0.7 and c.guidance_scale == 1.0
    big = preset("paper-large")  # config only; never instantiated in tests
    assert big.d_model == 1024 and big.num_blocks == 32 and big.diffusion_width == 1024
    assert set(PRESETS) >= {"robot", "tiny", "paper-base", "paper-large"}
    with pytest.raises(ValueError, match="unknown keys"):
        TIMARConfig.from_dict({"nope": 1})
    with pytest.raises(ValueError):
        preset("tiny", head="transformer")
