"""Parity with the official model: convert, save, load, then run K steps from the initial state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trm_edge import load_checkpoint

from conftest import REFERENCE, reference_cases, reference_files, run_cli

ATOL = 1e-4


def run_steps(model, inputs: np.ndarray, ids: np.ndarray, steps: int):
    state = model.initial_state(inputs.shape[0])
    logits, q_halt, q_cont = [], [], []
    with torch.no_grad():
        for _ in range(steps):
            state, lg, qh, qc = model.step(state, torch.from_numpy(inputs), torch.from_numpy(ids))
            logits.append(lg.numpy())
            q_halt.append(qh.numpy())
            q_cont.append(qc.numpy())
    return np.stack(logits), np.stack(q_halt), np.stack(q_cont)


@pytest.mark.parametrize("case", reference_cases())
def test_every_step_matches_official(case: str, converted_reference: dict[str, Path]) -> None:
    expected = np.load(REFERENCE / f"{case}.expected.npz")
    model = load_checkpoint(converted_reference[case])
    steps = expected["logits"].shape[0]
    logits, q_halt, q_cont = run_steps(model, expected["inputs"], expected["puzzle_identifiers"], steps)
    for k in range(steps):
        np.testing.assert_allclose(logits[k], expected["logits"][k], atol=ATOL, rtol=0, err_msg=f"step {k + 1}")
        np.testing.assert_allclose(q_halt[k], expected["q_halt_logits"][k], atol=ATOL, rtol=0)
        np.testing.assert_allclose(q_cont[k], expected["q_continue_logits"][k], atol=ATOL, rtol=0)


def test_cli_convert_then_info(tmp_path: Path) -> None:
    case = "trm_att_arc"
    pt, config, dataset = reference_files(case)
    out = tmp_path / "arc.safetensors"
    run_cli("convert", str(pt), "--config", str(config), "--dataset", str(dataset), "-o", str(out))
    shown = run_cli("info", str(out)).stdout
    assert "TRM" in shown and "rope" in shown and "halt when q_halt > 0" in shown
    expected = np.load(REFERENCE / f"{case}.expected.npz")
    logits, *_ = run_steps(load_checkpoint(out), expected["inputs"], expected["puzzle_identifiers"], 1)
    np.testing.assert_allclose(logits[0], expected["logits"][0], atol=ATOL, rtol=0)


def test_convert_from_flags_alone(tmp_path: Path) -> None:
    """Without the yaml, the options that the tensors cannot imply are enough."""
    pt, _, _ = reference_files("trm_att_learned_maze")
    out = tmp_path / "maze.safetensors"
    run_cli("convert", str(pt), "--set", "H_cycles=2", "--set", "L_cycles=3", "--set", "num_heads=2",
            "--set", "halt_max_steps=8", "-o", str(out))
    model = load_checkpoint(out)
    assert model.config.seq_len == 36 and model.config.pos_encodings == "learned"
    expected = np.load(REFERENCE / "trm_att_learned_maze.expected.npz")
    logits, *_ = run_steps(model, expected["inputs"], expected["puzzle_identifiers"], 2)
    np.testing.assert_allclose(logits, expected["logits"][:2], atol=ATOL, rtol=0)
