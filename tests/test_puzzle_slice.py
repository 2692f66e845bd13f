"""Slicing the puzzle-embedding table to the puzzles a deployment serves."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from trm_edge.checkpoint import load_checkpoint, save_checkpoint
from trm_edge.config import ModelConfig
from trm_edge.model import RecursiveReasoningModel

from conftest import run_cli, run_cli_in_process


def test_sliced_checkpoint_answers_like_the_original(tmp_path: Path) -> None:
    config = ModelConfig(arch="trm", seq_len=16, vocab_size=12, hidden_size=32, H_cycles=1, L_cycles=1,
                         L_layers=1, num_heads=2, puzzle_emb_ndim=32, puzzle_emb_len=1, num_puzzle_identifiers=10)
    torch.manual_seed(0)
    model = RecursiveReasoningModel(config)
    with torch.no_grad():
        model.puzzle_emb.weight.normal_()
    original = save_checkpoint(model, tmp_path / "full.safetensors")
    names = ["<blank>", *(f"task{i % 3}|||aug{i}" for i in range(1, 10))]
    (tmp_path / "identifiers.json").write_text(json.dumps(names))

    run_cli_in_process("slice-puzzles", str(original), "--ids", "0,7,3-4", "-o", str(tmp_path / "a.safetensors"),
                       check=True)
    sliced = load_checkpoint(tmp_path / "a.safetensors")
    assert sliced.config.num_puzzle_identifiers == 4 and sliced.info["puzzle_id_map"] == [0, 7, 3, 4]
    tokens = torch.randint(1, 12, (2, 16))
    full = load_checkpoint(original)
    with torch.no_grad():
        a = full.step(full.initial_state(2), tokens, torch.tensor([7, 4]))
        b = sliced.step(sliced.initial_state(2), tokens, torch.tensor([1, 3]))
    torch.testing.assert_close(a.logits, b.logits, rtol=0, atol=0)

    run_cli_in_process("slice-puzzles", str(original), "--identifiers", str(tmp_path / "identifiers.json"),
                       "--match", "^task1", "-o", str(tmp_path / "b.safetensors"))
    assert load_checkpoint(tmp_path / "b.safetensors").info["puzzle_id_map"] == [0, 1, 4, 7]

    bad = run_cli("slice-puzzles", str(original), "--ids", "0,12", "-o", str(tmp_path / "c.safetensors"), check=False)
    assert bad.returncode == 2 and "outside this model's [0, 10)" in bad.stderr
    bad = run_cli_in_process("slice-puzzles", str(original), "-o", str(tmp_path / "c.safetensors"))
    assert bad.returncode == 2 and "give one of --ids, --tasks or --match" in bad.stderr


def test_slice_puzzles_takes_a_shipped_model(tmp_path: Path) -> None:
    """shipped:NAME is a checkpoint here as everywhere: the shipped Sudoku is read (and has no table to slice)."""
    out = str(tmp_path / "s.safetensors")
    proc = run_cli_in_process("slice-puzzles", "shipped:sudoku-small", "--ids", "0", "-o", out)
    assert proc.returncode == 2 and "sudoku-small.safetensors has no puzzle embedding to slice" in proc.stderr
    proc = run_cli_in_process("slice-puzzles", "shipped:sudoku-huge", "--ids", "0", "-o", out)
    assert proc.returncode == 2 and "no shipped model 'sudoku-huge'" in proc.stderr
