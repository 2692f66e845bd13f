"""The model API that export, runtime and training build on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trm_edge import load_checkpoint
from trm_edge.config import ModelConfig
from trm_edge.errors import TrmEdgeError
from trm_edge.model import RecursiveReasoningModel

from conftest import REFERENCE


def test_step_shapes_and_halting_rules(converted_reference: dict[str, Path]) -> None:
    for case, path in converted_reference.items():
        model = load_checkpoint(path)
        c = model.config
        assert not model.training
        state = model.initial_state(3)
        assert state.z_H.shape == (3, c.total_len, c.hidden_size)
        inputs = torch.ones(3, c.seq_len, dtype=torch.int32)
        with torch.no_grad():
            state, logits, q_halt, q_cont = model.step(state, inputs, torch.zeros(3, dtype=torch.int32))
        assert logits.shape == (3, c.seq_len, c.vocab_size)
        assert q_halt.shape == q_cont.shape == (3,) and q_halt.dtype == torch.float32
        expected_rule = "q_halt>q_continue" if case.startswith("hrm") else "q_halt>0"
        assert c.halt_rule == expected_rule
    halt = torch.tensor([1.0, -1.0, 0.5])
    cont = torch.tensor([2.0, -2.0, 0.0])
    hrm = load_checkpoint(converted_reference["hrm_att_sudoku"])
    trm = load_checkpoint(converted_reference["trm_att_arc"])
    assert trm.halted(halt, cont).tolist() == [True, False, True]
    assert hrm.halted(halt, cont).tolist() == [False, True, True]


def test_bfloat16_agrees_with_float32(converted_reference: dict[str, Path]) -> None:
    for case in ("trm_mlp_sudoku", "hrm_att_sudoku"):
        expected = np.load(REFERENCE / f"{case}.expected.npz")
        model = load_checkpoint(converted_reference[case], dtype=torch.bfloat16)
        assert model.compute_dtype == torch.bfloat16
        state = model.initial_state(4)
        with torch.no_grad():
            state, logits, q_halt, _ = model.step(
                state, torch.from_numpy(expected["inputs"]), torch.from_numpy(expected["puzzle_identifiers"])
            )
        assert state.z_H.dtype == torch.bfloat16
        agree = (logits.float().argmax(-1).numpy() == expected["logits"][0].argmax(-1)).mean()
        # PyTorch bf16 on random-weight fixtures near argmax ties (Zen 4): 99.4% / 98.5% of cells, q_halt
        # within 0.04 / 0.015 of fp32; bf16 arithmetic is bf16 on every CPU (emulated where not native).
        assert agree > 0.9, f"{case}: bf16 argmax agrees on only {agree:.1%} of cells"
        np.testing.assert_allclose(q_halt.numpy(), expected["q_halt_logits"][0], atol=0.25)


def test_training_backpropagates_through_last_cycle_only(converted_reference: dict[str, Path]) -> None:
    """Deep supervision: the carried state gets no gradient; the weights and input embedding do."""
    model = load_checkpoint(converted_reference["trm_att_arc"]).train()
    c = model.config
    state = model.initial_state(2)
    z_H = state.z_H.clone().requires_grad_()
    z_L = state.z_L.clone().requires_grad_()
    inputs = torch.randint(0, c.vocab_size, (2, c.seq_len))
    out = model.step((z_H, z_L), inputs, torch.zeros(2, dtype=torch.long))
    (out.logits.sum() + out.q_halt.sum()).backward()
    assert z_H.grad is None and z_L.grad is None
    assert model.embed_tokens.weight.grad is not None and model.lm_head.weight.grad.abs().sum() > 0
    # The last cycle is differentiable: the next state carries a graph back into the weights.
    assert out.state.z_H.requires_grad and out.state.z_H.grad_fn is not None


def test_bad_inputs_are_explained(converted_reference: dict[str, Path]) -> None:
    model = load_checkpoint(converted_reference["trm_att_arc"])
    state = model.initial_state(1)
    ids = torch.zeros(1, dtype=torch.long)
    with pytest.raises(TrmEdgeError, match=r"shape \(batch, 100\)"):
        model.step(state, torch.zeros(1, 81, dtype=torch.long), ids)
    with pytest.raises(TrmEdgeError, match=r"token ids must lie in \[0, 12\)"):
        model.step(state, torch.full((1, 100), 12), ids)
    with pytest.raises(TrmEdgeError, match=r"puzzle identifiers must lie in \[0, 7\)"):
        model.step(state, torch.zeros(1, 100, dtype=torch.long), torch.tensor([7]))
    with pytest.raises(TrmEdgeError, match="pass puzzle_identifiers"):
        model.step(state, torch.zeros(1, 100, dtype=torch.long))


def test_fresh_model_initialisation_matches_official_choices() -> None:
    torch.manual_seed(0)
    config = ModelConfig(
        arch="trm",
        seq_len=81,
        vocab_size=11,
        hidden_size=256,
        H_cycles=2,
        L_cycles=2,
        L_layers=2,
        num_heads=4,
        puzzle_emb_ndim=256,
        puzzle_emb_len=1,
    )
    model = RecursiveReasoningModel(config)
    assert torch.all(model.q_head.weight == 0) and torch.all(model.q_head.bias == -5)
    assert torch.all(model.puzzle_emb.weight == 0)
    w = model.L_net.layers[0].mlp.down_proj.weight
    assert abs(w.std().item() * w.shape[1] ** 0.5 - 1.0) < 0.05  # LeCun normal: std 1/sqrt(fan_in)
    assert abs(model.H_init.std().item() - 1.0) < 0.2
