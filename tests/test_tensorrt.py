"""TensorRT engines: everything TensorRT-independent is tested here; the build itself runs where
TensorRT and a GPU exist (`pytest -m tensorrt`, or `trm-edge doctor --engine DIR`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trm_edge.errors import TrmEdgeError
from trm_edge.export.exporter import export_onnx
from trm_edge.export.tensorrt_engine import BatchProfile, build_engine, engine_name, profile_shapes, timing_cache_name
from trm_edge.gpu_info import GpuInfo
from trm_edge.runtime.backends.onnxruntime_session import create_session

from conftest import GPU, HAS_TENSORRT, run_cli, tensorrt_on_a_gpu


@pytest.fixture(scope="module")
def maze_export(converted_reference: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(
        converted_reference["trm_att_learned_maze"], tmp_path_factory.mktemp("trt") / "fp16", "fp16"
    ).directory


def test_engine_names_say_where_they_run() -> None:
    orin = GpuInfo("Orin", (8, 7))
    assert orin.sm == "sm87"
    assert engine_name("step", "10.3.0", orin, "fp16") == "step.trt10.3.0.sm87.fp16.engine"
    assert timing_cache_name("11.0.1", GpuInfo("H100", (9, 0))) == "timing.trt11.0.1.sm90.cache"


def test_profile_covers_the_batch_range(maze_export: Path) -> None:
    meta = json.loads((maze_export / "trm_edge.json").read_text())
    shapes = profile_shapes(meta["graphs"]["step"]["inputs"], BatchProfile(1, 16, 64))
    assert shapes["z_H"] == ((1, 36, 32), (16, 36, 32), (64, 36, 32))
    assert shapes["reset"] == ((1,), (16,), (64,))
    assert set(shapes) == {"x_emb", "z_H", "z_L", "reset"}


def test_profile_must_be_ordered_and_match_a_static_batch() -> None:
    with pytest.raises(TrmEdgeError, match="min <= opt <= max"):
        BatchProfile(8, 4, 16).check(None)
    with pytest.raises(TrmEdgeError, match="fixed batch of 4"):
        BatchProfile(1, 4, 8).check(4)
    BatchProfile(4, 4, 4).check(4)


@pytest.mark.skipif(HAS_TENSORRT and GPU is not None, reason="TensorRT and a GPU are here: the real build runs")
def test_build_without_tensorrt_or_gpu_says_what_is_missing(maze_export: Path) -> None:
    with pytest.raises(TrmEdgeError, match="TensorRT is not installed|no NVIDIA GPU"):
        build_engine(maze_export)
    proc = run_cli("build-engine", str(maze_export), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "TensorRT is not installed" in proc.stderr or "no NVIDIA GPU" in proc.stderr


def test_build_engine_on_something_that_is_not_an_export(tmp_path: Path) -> None:
    proc = run_cli("build-engine", str(tmp_path), check=False)
    assert proc.returncode == 2 and "not a trm-edge export directory" in proc.stderr


def test_onnxruntime_gpu_fallback_is_an_error_not_a_cpu_figure(maze_export: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers() and GPU is not None:
        pytest.skip("CUDA provider is available here")
    with pytest.raises(TrmEdgeError, match="CUDAExecutionProvider"):
        create_session(maze_export / "step.onnx", ["CUDAExecutionProvider", "CPUExecutionProvider"])


@tensorrt_on_a_gpu
def test_real_engine_builds_and_loads(maze_export: Path) -> None:
    import tensorrt as trt

    path = build_engine(maze_export, BatchProfile(1, 4, 8), workspace_gib=1.0)
    assert path.name == engine_name("step", trt.__version__, GPU, "fp16")
    assert (maze_export / timing_cache_name(trt.__version__, GPU)).stat().st_size > 0
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(path.read_bytes())
    assert engine is not None and engine.num_io_tensors == 10
    meta = json.loads((maze_export / "trm_edge.json").read_text())
    assert meta["engines"][-1]["file"] == path.name
