"""Does a cheaper number format make a step faster in ONNX Runtime's CPU provider?

    python benchmarks/cpu_precision.py CKPT.safetensors [--batch 8]

Times one step of the same checkpoint exported fp32, fp16, and fp32 with int8 dynamic
quantization of every MatMul/Gemm (onnxruntime.quantization.quantize_dynamic). bf16 is not timed:
ORT's CPU provider has no bf16 kernels (the export validates bf16 in ONNX's reference evaluator).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic

from trm_edge.export.exporter import export_onnx


def time_step(path: Path, dtype: type, shape: tuple[int, ...], repeat: int = 4) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {name: rng.standard_normal(shape).astype(dtype) for name in ("x_emb", "z_H", "z_L")}
    feeds["reset"] = np.ones(shape[0], dtype=bool)
    session.run(None, feeds)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trm-cpu-precision-"))
    fp32 = export_onnx(args.checkpoint, work / "fp32", "fp32", validate=False)
    fp16 = export_onnx(args.checkpoint, work / "fp16", "fp16", validate=False)
    int8 = work / "int8_dynamic_step.onnx"
    quantize_dynamic(
        fp32.directory / "step.onnx", int8, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
    )
    model = fp32.metadata.model
    shape = (args.batch, model.state_len, model.hidden_size)
    base = time_step(fp32.directory / "step.onnx", np.float32, shape)
    print(f"batch {args.batch}, one step, ONNX Runtime {ort.__version__} CPU")
    for name, path, dtype in (
        ("fp32", fp32.directory / "step.onnx", np.float32),
        ("fp16", fp16.directory / "step.onnx", np.float16),
        ("int8 dynamic", int8, np.float32),
    ):
        seconds = base if name == "fp32" else time_step(path, dtype, shape)
        print(f"{name:>13}: {seconds * 1e3:8.1f} ms  ({base / seconds:.2f}x fp32)")


if __name__ == "__main__":
    main()
