"""Bad input gets a clear error that names what is wrong, never a deep traceback or a silent load."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from trm_edge import load_checkpoint
from trm_edge.checkpoint import read_header
from trm_edge.convert import convert_official
from trm_edge.errors import CheckpointError, ConfigError

from conftest import reference_files, run_cli, run_cli_in_process


@pytest.fixture
def ckpt(converted_reference: dict[str, Path]) -> Path:
    return converted_reference["trm_mlp_sudoku"]


def rewrite(src: Path, dst: Path, edit_tensors=None, edit_meta=None) -> Path:
    from safetensors import safe_open

    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(src))
    if edit_tensors:
        edit_tensors(tensors)
    if edit_meta:
        edit_meta(meta)
    save_file(tensors, str(dst), metadata=meta)
    return dst


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_truncated_file(ckpt: Path, tmp_path: Path) -> None:
    data = ckpt.read_bytes()
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable .safetensors"):
        load_checkpoint(bad)


def test_text_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "notes.safetensors"
    bad.write_text("hello, I am not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a readable .safetensors"):
        load_checkpoint(bad)


def test_plain_safetensors_without_config(tmp_path: Path) -> None:
    bad = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(bad))
    with pytest.raises(CheckpointError, match="not a trm-edge checkpoint"):
        load_checkpoint(bad)


def test_official_pickle_points_to_convert() -> None:
    pt, _, _ = reference_files("trm_mlp_sudoku")
    with pytest.raises(CheckpointError, match="trm-edge convert"):
        load_checkpoint(pt)


def test_missing_tensor_is_named(ckpt: Path, tmp_path: Path) -> None:
    bad = rewrite(ckpt, tmp_path / "m.safetensors", edit_tensors=lambda t: t.pop("lm_head.weight"))
    with pytest.raises(CheckpointError, match="missing tensors: lm_head.weight"):
        load_checkpoint(bad)


def test_extra_tensor_is_named(ckpt: Path, tmp_path: Path) -> None:
    def add(t):
        t["L_net.layers.7.mlp.down_proj.weight"] = torch.zeros(1)

    bad = rewrite(ckpt, tmp_path / "e.safetensors", edit_tensors=add)
    with pytest.raises(CheckpointError, match=r"unexpected tensors: L_net\.layers\.7"):
        load_checkpoint(bad)


def test_wrong_shape_is_named(ckpt: Path, tmp_path: Path) -> None:
    def shrink(t):
        t["q_head.weight"] = t["q_head.weight"][:, :10].contiguous()

    bad = rewrite(ckpt, tmp_path / "s.safetensors", edit_tensors=shrink)
    with pytest.raises(CheckpointError, match=r"'q_head.weight' has shape \(2, 10\), the config implies \(2, 64\)"):
        load_checkpoint(bad)


def test_future_format_version(ckpt: Path, tmp_path: Path) -> None:
    bad = rewrite(ckpt, tmp_path / "v.safetensors", edit_meta=lambda m: m.update(format_version="99"))
    with pytest.raises(CheckpointError, match="format version 99"):
        read_header(bad)


def test_unknown_arch_in_checkpoint(ckpt: Path, tmp_path: Path) -> None:
    def edit(m):
        cfg = json.loads(m["config"])
        cfg["arch"] = "transformer"
        m["config"] = json.dumps(cfg)

    bad = rewrite(ckpt, tmp_path / "a.safetensors", edit_meta=edit)
    with pytest.raises(CheckpointError, match="arch 'transformer' is not one of trm, hrm"):
        load_checkpoint(bad)


def official_yaml(tmp_path: Path, case: str, **changes) -> Path:
    _, config, _ = reference_files(case)
    doc = yaml.safe_load(config.read_text())
    doc["arch"].update(changes)
    out = tmp_path / "all_config.yaml"
    out.write_text(yaml.safe_dump(doc))
    return out


def test_unknown_official_arch_name(tmp_path: Path) -> None:
    pt, _, dataset = reference_files("trm_att_arc")
    config = official_yaml(tmp_path, "trm_att_arc", name="recursive_reasoning.trm_singlez@Model")
    with pytest.raises(ConfigError, match="unsupported architecture"):
        convert_official(pt, config, dataset)


def test_config_that_contradicts_tensors(tmp_path: Path) -> None:
    pt, _, dataset = reference_files("trm_att_arc")
    config = official_yaml(tmp_path, "trm_att_arc", hidden_size=128)
    with pytest.raises(ConfigError, match="hidden_size: 128 but embed_tokens implies 64"):
        convert_official(pt, config, dataset)


def test_puzzle_emb_len_without_puzzle_embedding(tmp_path: Path) -> None:
    """puzzle_emb_ndim 0 with the default puzzle_emb_len 16: the official code crashes; we explain."""
    pt, _, dataset = reference_files("trm_att_learned_maze")
    config = official_yaml(tmp_path, "trm_att_learned_maze", puzzle_emb_len=16)
    with pytest.raises(ConfigError, match="set puzzle_emb_len: 0"):
        convert_official(pt, config, dataset)


def test_pickle_with_payload_is_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    state = torch.load(reference_files("trm_mlp_sudoku")[0], weights_only=True)
    state["evil"] = Payload()  # type: ignore[assignment]
    bad = tmp_path / "evil.pt"
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match="never runs code from a pickle"):
        convert_official(bad)
    assert not marker.exists()
    proc = run_cli("convert", str(bad), "-o", str(tmp_path / "out.safetensors"), check=False)
    assert proc.returncode == 2 and "refused to load" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()


def test_truncated_official_checkpoint(tmp_path: Path) -> None:
    pt, config, dataset = reference_files("trm_mlp_sudoku")
    bad = tmp_path / "cut.pt"
    bad.write_bytes(pt.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        convert_official(bad, config, dataset)


def test_convert_asks_for_what_tensors_do_not_say(tmp_path: Path) -> None:
    pt, _, _ = reference_files("trm_att_arc")
    proc = run_cli_in_process("convert", str(pt), "-o", str(tmp_path / "x.safetensors"))
    assert proc.returncode == 2
    for needed in ("seq_len", "H_cycles", "L_cycles", "num_heads", "pos_encodings"):
        assert needed in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_reports_bad_checkpoint_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    proc = run_cli_in_process("info", str(bad))
    assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in proc.stderr
