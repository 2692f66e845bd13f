"""`trm-edge export --format triton`: a model repository for NVIDIA Triton containers.

    REPO/
      trm_solver/            the model clients call: Python backend (BLS), loops until each puzzle halts
        config.pbtxt         dynamic batching, instance group, the halting policy
        1/model.py           imports trm_edge.runtime.serving.python_model (trm-edge in the image)
        1/trm_edge.json      the export's metadata (shapes, halting rule, task codec)
      trm_solver_init/       tokens -> input embedding   (onnxruntime_onnx)
      trm_solver_step/       one recursion step          (onnxruntime_onnx, or tensorrt_plan)
      README.md              how to run it, build the engine, and which container matches which TensorRT

The step model's plan (tensorrt_plan) is never shipped: an engine runs only on the TensorRT version
and GPU it was built with, so it is built inside the serving container (README.md says how).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from trm_edge.atomic import atomic_folder
from trm_edge.contract.export_dir import read_metadata, write_metadata
from trm_edge.contract.metadata import NUMPY_STATE_DTYPES, ExportMetadata
from trm_edge.contract.triton import (
    DEFAULT_MODEL_NAME,
    MODEL_FILE,
    Batching,
    Tensor,
    model_config,
    solver_inputs,
    solver_outputs,
)
from trm_edge.errors import TrmEdgeError
from trm_edge.export.files import TRITON_README, TRITON_STEP_ONNX, triton_models

STEP_PLATFORMS = ("onnxruntime", "tensorrt")
# The container trm-edge's own serve binary comes from (nvidia-pytriton 0.7: Triton 2.51).
TESTED_CONTAINER = "nvcr.io/nvidia/tritonserver:24.10-py3"


def graph_tensors(specs: list[dict[str, Any]]) -> list[Tensor]:
    """Triton tensors for a graph's I/O from trm_edge.json (the batch axis dropped)."""
    return [Tensor(s["name"], s["dtype"], tuple(int(d) for d in s["shape"][1:])) for s in specs]


def write_triton_repository(
    export_dir: str | Path,
    repo: str | Path,
    model_name: str = DEFAULT_MODEL_NAME,
    step_platform: str = "onnxruntime",
    device: str = "gpu",
    batching: Batching | None = None,
    halt: str = "auto",
) -> Path:
    export_dir, repo = Path(export_dir), Path(repo)
    meta = read_metadata(export_dir)
    batching = batching or Batching()
    batching.check()
    if step_platform not in STEP_PLATFORMS:
        raise TrmEdgeError(f"step platform {step_platform!r} is not one of {', '.join(STEP_PLATFORMS)}")
    if device not in ("gpu", "cpu"):
        raise TrmEdgeError(f"device must be gpu or cpu, got {device!r}")
    if step_platform == "tensorrt" and device == "cpu":
        raise TrmEdgeError("a tensorrt_plan step model runs on a GPU: use --triton-device gpu or onnxruntime")
    if meta.state_dtype not in NUMPY_STATE_DTYPES:
        raise TrmEdgeError("the Triton repository loops the state through Python: export fp32 or fp16")
    check_repository_target(repo)
    with atomic_folder(repo) as staging:  # the repository appears whole, or not at all
        _write_models(export_dir, staging, meta, model_name, step_platform, device, batching, halt)
    return repo


def _write_models(export_dir: Path, repo: Path, meta: ExportMetadata, model_name: str, step_platform: str,
                  device: str, batching: Batching, halt: str) -> None:
    _, init_name, step_name = triton_models(model_name)
    graph_batching = Batching(batching.max_batch, 0, 1, "KIND_GPU" if device == "gpu" else "KIND_CPU")
    graphs = {name: graph.to_dict() for name, graph in meta.graphs.items()}

    init_dir = repo / init_name
    (init_dir / "1").mkdir(parents=True)
    shutil.copyfile(export_dir / graphs["init"]["file"], init_dir / "1" / "model.onnx")
    (init_dir / "config.pbtxt").write_text(
        model_config(init_name, "onnxruntime", None, graph_tensors(graphs["init"]["inputs"]),
                     graph_tensors(graphs["init"]["outputs"]), graph_batching, dynamic_batching=False)
    )

    step_dir = repo / step_name
    (step_dir / "1").mkdir(parents=True)
    step_in, step_out = graph_tensors(graphs["step"]["inputs"]), graph_tensors(graphs["step"]["outputs"])
    if step_platform == "onnxruntime":
        shutil.copyfile(export_dir / graphs["step"]["file"], step_dir / "1" / "model.onnx")
        config = model_config(step_name, "onnxruntime", None, step_in, step_out, graph_batching, dynamic_batching=False)
    else:
        # The ONNX the engine is built from travels beside the repository, outside Triton's view.
        shutil.copyfile(export_dir / graphs["step"]["file"], repo / TRITON_STEP_ONNX)
        config = model_config(step_name, None, "tensorrt_plan", step_in, step_out, graph_batching,
                              dynamic_batching=False)
    (step_dir / "config.pbtxt").write_text(config)

    solver_dir = repo / model_name
    (solver_dir / "1").mkdir(parents=True)
    (solver_dir / "1" / "model.py").write_text(MODEL_FILE)
    write_metadata(solver_dir / "1", meta, files_here=False)  # the graphs are the other models
    seq_len = meta.model.seq_len
    params = {"backend": "triton-bls", "init_model": init_name, "step_model": step_name, "halt": halt}
    (solver_dir / "config.pbtxt").write_text(
        model_config(model_name, "python", None, solver_inputs(seq_len), solver_outputs(seq_len),
                     Batching(batching.max_batch, batching.queue_delay_us, batching.instances, "KIND_CPU"), params)
    )
    (repo / TRITON_README).write_text(repository_readme(model_name, step_platform, batching.max_batch, meta))


def check_repository_target(repo: Path) -> None:
    """Triton loads every folder of a repository: never write one into a folder that has others."""
    if repo.exists() and (not repo.is_dir() or any(repo.iterdir())):
        raise TrmEdgeError(f"{repo} exists and is not empty (or not a folder): give a new folder for the repository")


def repository_readme(model_name: str, step_platform: str, max_batch: int, meta: ExportMetadata) -> str:
    seq, state, hidden = meta.model.seq_len, meta.model.state_len, meta.model.hidden_size
    engine = ""
    if step_platform == "tensorrt":
        shapes = lambda b: ",".join(f"{n}:{b}x{state}x{hidden}" for n in ("x_emb", "z_H", "z_L")) + f",reset:{b}"  # noqa: E731
        engine = f"""
## Build the step engine (once per GPU model and container version)

`{model_name}_step` is a `tensorrt_plan`: build `model.plan` inside the container that will serve it,
on the same kind of GPU, from `step.onnx` (kept beside the repository):

```bash
docker run --rm --gpus all -v $PWD:/models {TESTED_CONTAINER} \\
  /usr/src/tensorrt/bin/trtexec --onnx=/models/step.onnx --saveEngine=/models/{model_name}_step/1/model.plan \\
  --minShapes={shapes(1)} --optShapes={shapes(min(64, max_batch))} --maxShapes={shapes(max_batch)}
```
"""
    return f"""# Triton model repository for a trm-edge export

Written by `trm-edge export --format triton`. Clients call **`{model_name}`**; it runs the trm-edge
loop (halting, continuous batching within each execution) and calls `{model_name}_init` and
`{model_name}_step` ({step_platform}) through BLS for every recursion step.

Inputs per puzzle (row): `tokens` INT32 [{seq}] (+ optional `puzzle_identifiers` INT32 [1]) or
`puzzle` BYTES [1] (task text). Outputs: `answer` INT32 [{seq}], `answer_text` BYTES [1], `steps`
INT32 [1], `halt_confidence` FP32 [1]. At most {max_batch} rows per execution (Triton merges requests).

## Run

`{model_name}/1/model.py` imports trm-edge, so the image needs it (the base install: numpy, no torch):

```dockerfile
FROM {TESTED_CONTAINER}
COPY trm_edge-*.whl /tmp/
RUN pip install /tmp/trm_edge-*.whl && rm /tmp/trm_edge-*.whl
```

(`pip wheel --no-deps -w . /path/to/trm-edge` makes the wheel.) Then

```bash
docker build -t trm-triton . && docker run --rm --gpus all -p 8000:8000 -p 8001:8001 -p 8002:8002 \\
  -v $PWD:/models trm-triton tritonserver --model-repository=/models
```
{engine}
## Before you expose it: one HTTP request can stop Triton

Triton's HTTP endpoint reads a JSON request's inputs into buffers sized by the shapes the client
declares, and it does so before it compares them with this repository's `max_batch_size` and
`dims`. A single request declaring `"shape": [1099511627776, {seq}]` makes tritonserver abort
(`std::bad_alloc`), and every client loses the server. Nothing in a model configuration prevents
it. Measured on Triton 2.51 (`nvcr.io/nvidia/tritonserver:24.10-py3`'s server) loading this
repository: JSON requests declaring 2**40 rows, or 2**40 values in a row, kill it, whichever model
they name; binary-extension and gRPC requests with the same shapes are refused (their bytes arrive
before anything is allocated), as are rows over `max_batch_size` and negative or overflowing
dimensions. Newer Triton releases check JSON sizes before allocating (`--http-max-input-size`);
check your release's notes before relying on that.

Do one of these before the HTTP port is reachable by anyone you do not trust:

- **Put `trm-edge guard` in front** (`pip install 'trm-edge[serve]'`; numpy, no torch): it reads
  this repository's configs and refuses, with a 400 that says why, any inference request that
  names an unknown model or input, declares more than `max_batch_size` rows or more values per row
  than `dims`, carries JSON `data` of another count, or a `binary_data_size` that disagrees with its
  shape or with the body. Everything else passes through. Keep Triton's own HTTP on the loopback:

  ```bash
  tritonserver --model-repository=/models --http-address=127.0.0.1 --http-port=8010 &
  trm-edge guard /models --upstream 127.0.0.1:8010 --port 8000
  ```

- **Or serve gRPC only**: `tritonserver --model-repository=/models --allow-http=false`.
- `trm-edge serve EXPORT` runs Triton with this guard built in.

## Which container matches which TensorRT

A TensorRT engine runs only with the TensorRT version that built it, so build it in the same
container (or the `nvcr.io/nvidia/tensorrt` container of the same release) that serves it.

| Triton container | Triton | TensorRT |
|---|---|---|
| 24.05 | 2.46 | 10.0.1 |
| 24.08 | 2.49 | 10.3.0 |
| 24.10 | 2.51 | 10.5.0 |
| 24.12 | 2.53 | 10.7.0 |
| 25.01 | 2.54 | 10.8.0 |
| 25.03 | 2.56 | 10.9.0 |
| 25.05 | 2.58 | 10.10.0 |
| 25.06 | 2.59 | 10.11.0 |

Check your release's notes ("Triton Inference Server Container Versions") for others. Jetson:
use the JetPack build of Triton and TensorRT that ships with your JetPack release.
"""
