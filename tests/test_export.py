"""Export: the step graph in ONNX matches the official outputs, is TensorRT-friendly, and fails clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from trm_edge.checkpoint import file_sha256, load_checkpoint
from trm_edge.errors import TrmEdgeError
from trm_edge.export.exporter import export_onnx
from trm_edge.export.graph_tools import CONTROL_FLOW, TENSORRT_OPS
from trm_edge.export.validate import GraphRunner
from trm_edge.runtime.solver import Solver

from conftest import (
    REFERENCE,
    TRAINED,
    cli_runner_for_many_cases,
    export_reference_case,
    reference_cases,
    run_cli_in_process,
)

BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}


@pytest.fixture(scope="module")
def exports(
    converted_reference: dict[str, Path], reference_fp32_exports: dict, tmp_path_factory: pytest.TempPathFactory
) -> dict:
    """Every reference case exported in every precision (validation on, fixture inputs)."""
    out = tmp_path_factory.mktemp("exports")
    done = {(case, "fp32"): result for case, result in reference_fp32_exports.items()}
    for case, ckpt in converted_reference.items():
        for precision in ("fp16", "bf16"):
            done[case, precision] = export_reference_case(case, ckpt, out / f"{case}_{precision}", precision)
    return done


def run_graphs(export_dir: Path, expected: np.lib.npyio.NpzFile, steps: int, reference: bool = False):
    meta = json.loads((export_dir / "trm_edge.json").read_text())
    runner = GraphRunner(export_dir, prefer_reference=reference)
    feeds = {"tokens": expected["inputs"].astype(np.int32)}
    if meta["model"]["uses_puzzle_identifiers"]:
        feeds["puzzle_identifiers"] = expected["puzzle_identifiers"].astype(np.int32)
    x = runner.init(feeds)
    batch = len(x)
    z_H = z_L = np.zeros((batch, meta["model"]["state_len"], meta["model"]["hidden_size"]), x.dtype)
    reset = np.ones(batch, dtype=bool)
    outs = []
    for _ in range(steps):
        z_H, z_L, logits, answer, q_halt, q_cont = runner.step({"x_emb": x, "z_H": z_H, "z_L": z_L, "reset": reset})
        reset = np.zeros(batch, dtype=bool)
        outs.append((logits, answer, q_halt, q_cont))
    return outs


@pytest.mark.parametrize("case", reference_cases())
def test_fp32_graph_matches_official_every_step(case: str, exports: dict) -> None:
    expected = np.load(REFERENCE / f"{case}.expected.npz")
    steps = expected["logits"].shape[0]
    for k, (logits, answer, q_halt, q_cont) in enumerate(run_graphs(exports[case, "fp32"].directory, expected, steps)):
        np.testing.assert_allclose(logits, expected["logits"][k], atol=1e-4, rtol=0, err_msg=f"step {k + 1}")
        np.testing.assert_allclose(q_halt, expected["q_halt_logits"][k], atol=1e-4, rtol=0)
        np.testing.assert_allclose(q_cont, expected["q_continue_logits"][k], atol=1e-4, rtol=0)
        assert (answer == expected["logits"][k].argmax(-1)).all()


@pytest.mark.parametrize("case", reference_cases())
def test_fp16_answers_agree_with_fp32(case: str, exports: dict) -> None:
    expected = np.load(REFERENCE / f"{case}.expected.npz")
    result = exports[case, "fp16"]
    assert result.validation.engine == "onnxruntime CPU"
    for k, (_, answer, _, _) in enumerate(run_graphs(result.directory, expected, expected["logits"].shape[0])):
        agreement = (answer == expected["logits"][k].argmax(-1)).mean()
        # fp16 graphs in ONNX Runtime's CPU provider (pinned): fp16 keeps 10 mantissa bits, so only cells at an
        # argmax tie of the random-weight fixtures flip.
        assert agreement >= 0.99, f"{case} fp16 step {k + 1}: {agreement:.2%}"


def bf16_torch_agreement(ckpt: Path, expected, steps: int) -> list[float]:
    model = load_checkpoint(ckpt, dtype=torch.bfloat16)
    state = model.initial_state(len(expected["inputs"]))
    out = []
    with torch.no_grad():
        for k in range(steps):
            state, logits, _, _ = model.step(
                state, torch.from_numpy(expected["inputs"]), torch.from_numpy(expected["puzzle_identifiers"])
            )
            out.append((logits.float().argmax(-1).numpy() == expected["logits"][k].argmax(-1)).mean())
    return out


def test_openvino_on_a_half_precision_export_says_to_export_fp32(exports: dict) -> None:
    """OpenVINO lowers inside its compiled model from fp32 graphs only: a bf16/fp16 export is refused
    up front with the fix, whatever precision is asked for."""
    case = reference_cases()[0]
    for precision, asked in (("bf16", "auto"), ("fp16", "fp32")):
        with pytest.raises(TrmEdgeError, match=f"openvino runs fp32 exports .* is {precision}: export fp32"):
            Solver.load(exports[case, precision].directory, backend="openvino", precision=asked)


@pytest.mark.parametrize("case", reference_cases())
def test_bf16_graph_is_as_accurate_as_pytorch_bf16(case: str, exports: dict, converted_reference: dict) -> None:
    """ORT CPU has no bfloat16 kernels, so bf16 graphs run in ONNX's reference evaluator. The random-weight
    fixtures sit near argmax ties where bf16 itself (PyTorch included) flips 1-5% of cells, so the graph
    is held to PyTorch bf16's own agreement; the trained model is held to 98% below."""
    expected = np.load(REFERENCE / f"{case}.expected.npz")
    steps = expected["logits"].shape[0]
    result = exports[case, "bf16"]
    assert result.validation.engine == "onnx reference evaluator"
    torch_bf16 = bf16_torch_agreement(converted_reference[case], expected, steps)
    graph = [
        (answer == expected["logits"][k].argmax(-1)).mean()
        for k, (_, answer, _, _) in enumerate(run_graphs(result.directory, expected, steps))
    ]
    assert np.mean(graph) >= min(0.99, np.mean(torch_bf16) - 0.015) and min(graph) >= 0.94, (case, graph, torch_bf16)


def test_half_precision_on_the_trained_model_keeps_its_answers(
    trained_checkpoint: Path, trained_export: Path, tmp_path: Path
) -> None:
    """On real held-out puzzles, fp16 and bf16 graphs of the trained Sudoku TRM give the fp32 answers."""
    # 32 puzzles (2,592 cells): the bf16 graph runs in ONNX's Python reference evaluator, seconds per step.
    puzzles = (np.load(TRAINED / "test_300.npz")["puzzles"][:32] + 1).astype(np.int32)
    reference = run_graphs(trained_export, {"inputs": puzzles}, 3)
    for precision in ("fp16", "bf16"):
        # No export-time validation: this test compares the answers with fp32's itself.
        result = export_onnx(trained_checkpoint, tmp_path / precision, precision, validate=False)
        outs = run_graphs(result.directory, {"inputs": puzzles}, 3)
        for k in range(3):
            agreement = (outs[k][1] == reference[k][1]).mean()
            # Pinned (ORT CPU for fp16, the reference evaluator for bf16). Measured on these 32 puzzles (Zen 3):
            # fp16 100.0 / 99.92 / 99.96% of cells at steps 1-3, bf16 99.85 / 99.73 / 98.92% (3 puzzles differ
            # at step 3; on 64 puzzles 99.46%): the bar leaves a point of margin under bf16's lowest.
            assert agreement >= 0.98, (precision, k, agreement)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_graphs_are_tensorrt_friendly(precision: str, exports: dict, converted_reference: dict) -> None:
    for case in reference_cases():
        result = exports[case, precision]
        model = load_checkpoint(converted_reference[case])
        for name in ("init", "step"):
            graph = onnx.load(str(result.directory / f"{name}.onnx"))
            onnx.checker.check_model(graph, full_check=True)
            ops = {n.op_type for n in graph.graph.node}
            assert not ops & CONTROL_FLOW and ops <= TENSORRT_OPS, sorted(ops - TENSORRT_OPS)
            assert {o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")} == {17}
            for value in list(graph.graph.input) + list(graph.graph.output):
                dims = value.type.tensor_type.shape.dim
                assert dims[0].dim_param == "batch", value.name
                assert all(d.HasField("dim_value") for d in dims[1:]), value.name
        step = onnx.load(str(result.directory / "step.onnx"))
        tokens = onnx.load(str(result.directory / "init.onnx")).graph.input[0]
        assert tokens.type.tensor_type.elem_type == onnx.TensorProto.INT32
        # Weights stored once: the initializers are the parameters the step uses, at the precision's width.
        weight_bytes = sum(len(t.raw_data) for t in step.graph.initializer)
        step_params = model.num_parameters() - model.embed_tokens.weight.numel()
        step_params -= sum(getattr(model, n).weight.numel() for n in ("puzzle_emb", "embed_pos") if hasattr(model, n))
        expected_bytes = step_params * BYTES[precision]
        assert expected_bytes * 0.97 <= weight_bytes <= expected_bytes * 1.05 + 8192, (
            case,
            weight_bytes,
            expected_bytes,
        )


def test_metadata_describes_the_export(exports: dict, converted_reference: dict) -> None:
    result = exports["hrm_att_sudoku", "fp16"]
    meta = json.loads((result.directory / "trm_edge.json").read_text())
    assert meta["precision"] == "fp16" and meta["halting"] == {"rule": "q_halt>q_continue", "max_steps": 16}
    assert meta["task"]["name"] == "sudoku"
    assert meta["source"]["sha256"] == file_sha256(converted_reference["hrm_att_sudoku"])
    step = meta["graphs"]["step"]
    assert [t["name"] for t in step["inputs"]] == ["x_emb", "z_H", "z_L", "reset"]
    assert [t["name"] for t in step["outputs"]] == ["z_H_next", "z_L_next", "logits", "answer", "q_halt", "q_continue"]
    assert step["inputs"][1] == {"name": "z_H", "shape": ["batch", 82, 64], "dtype": "float16"}
    assert meta["graphs"]["init"]["inputs"][1] == {"name": "puzzle_identifiers", "shape": ["batch"], "dtype": "int32"}
    assert meta["validation"]["passed"] and meta["software"]["opset"] == 17
    assert {"trm_edge", "torch", "onnx", "onnxruntime"} <= set(meta["software"])


def test_cli_export_static_batch_and_opset(converted_reference: dict, tmp_path: Path) -> None:
    out = tmp_path / "static"
    shown = run_cli_in_process(
        "export", str(converted_reference["trm_att_learned_maze"]), "-o", str(out), "--batch", "3", "--opset", "18",
        check=True,
    ).stdout
    assert "answers after 4 steps" in shown and "exported" in shown
    graph = onnx.load(str(out / "step.onnx"))
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    assert {o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")} == {18}
    meta = json.loads((out / "trm_edge.json").read_text())
    assert meta["batch"] == {"dynamic": False, "size": 3}


def test_export_errors_are_clear(converted_reference: dict, tmp_path: Path) -> None:
    text = tmp_path / "notes.safetensors"
    text.write_text("not a model")
    run_case = cli_runner_for_many_cases()
    proc = run_case("export", str(text))
    assert proc.returncode == 2 and "not a readable .safetensors" in proc.stderr and "Traceback" not in proc.stderr

    ckpt = str(converted_reference["trm_att_learned_maze"])
    proc = run_case("export", ckpt, "-o", str(tmp_path / "o13"), "--opset", "13")
    assert proc.returncode == 2 and "opset 13 is not supported" in proc.stderr

    proc = run_case("export", ckpt, "-o", str(tmp_path / "tight"), "--precision", "fp16", "--atol", "1e-9")
    assert proc.returncode == 2 and "validation failed (fp16" in proc.stderr and "Traceback" not in proc.stderr

    with pytest.raises(TrmEdgeError, match="precision 'int4'"):
        export_onnx(ckpt, tmp_path / "x", precision="int4")


def test_export_with_labelled_data_calibrates_the_default_halting(trained_checkpoint: Path, tmp_path: Path) -> None:
    data = np.load(TRAINED / "test_300.npz")
    held_out = tmp_path / "held_out.npz"
    np.savez(held_out, puzzles=data["puzzles"][:48], solutions=data["solutions"][:48])
    out = tmp_path / "export"
    shown = run_cli_in_process("export", str(trained_checkpoint), "-o", str(out), "--data", str(held_out),
                               check=True).stdout
    assert "default halting is now" in shown and "held out" in shown
    meta = json.loads((out / "trm_edge.json").read_text())
    calibration = meta["halting"]["calibration"]
    assert meta["halting"]["policy"] == calibration["chosen"]["policy"] and calibration["puzzles"] == 48
    assert calibration["chosen"]["mean_steps"] < 16 and calibration["data"] == "held_out.npz"


def test_export_library_call_takes_a_format_and_cleans_its_scratch(
    converted_reference: dict[str, Path], tmp_path: Path
) -> None:
    import tempfile

    from trm_edge.export import export

    def scratch() -> set[str]:
        return {p.name for p in Path(tempfile.gettempdir()).glob("trm-edge-export-*")}

    before = scratch()
    with pytest.raises(TrmEdgeError, match="export format 'tflite' is not one of onnx, engine, triton"):
        export(converted_reference["trm_mlp_sudoku"], tmp_path / "x", format="tflite")
    directory = export(converted_reference["trm_mlp_sudoku"], tmp_path / "onnx")
    assert (directory / "step.onnx").is_file() and (directory / "trm_edge.json").is_file()
    repository = export(converted_reference["trm_mlp_sudoku"], tmp_path / "repo", format="triton")
    assert (repository / "trm_solver" / "config.pbtxt").is_file()
    assert scratch() == before  # the intermediate ONNX export is gone
