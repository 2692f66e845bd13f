"""Shared test helpers: where the fixtures live, and how to run the CLI as a user does."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from trm_edge.gpu_info import cuda_gpu
from trm_edge.runtime.serving.load_clients import free_ports as free_ports  # for the tests, as before
from trm_edge.runtime.serving.load_clients import start_serve as start_serve

REPO = Path(__file__).resolve().parents[1]
# Everything the tests read lives in the project (tests/fixtures/README.md says where it comes from).
FIXTURES = REPO / "tests" / "fixtures"
REFERENCE = FIXTURES / "reference"
TRAINED = FIXTURES / "trained"
# The CPU backends every runtime behaviour is checked on.
CPU_BACKENDS = ("ort-cpu", "openvino")  # each at fp32 in parity tests: a parity test names its precision
# Real TensorRT engines build only where the package and an NVIDIA GPU both are (not on CI).
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
GPU = cuda_gpu()
# Set by .ci/run: a missing Node or chromium fails the JS tests instead of skipping them.
REQUIRE_JS_ENV = "TRM_EDGE_REQUIRE_JS"


def tensorrt_on_a_gpu(test: Callable[..., None]) -> Callable[..., None]:
    """Mark a test that builds real engines (`pytest -m tensorrt`); it skips, saying what is missing."""
    for mark in (pytest.mark.skipif(GPU is None, reason="needs an NVIDIA GPU"),
                 pytest.mark.skipif(not HAS_TENSORRT, reason="needs the tensorrt Python package (not installable "
                                    "on this CI)"),
                 pytest.mark.tensorrt):
        test = mark(test)
    return test


def reference_cases() -> list[str]:
    """Every official-format case in the reference fixtures (a checkpoint with its expected outputs)."""
    if not REFERENCE.is_dir():
        # Fixtures are part of the contract: missing fixtures fail, they do not skip.
        raise FileNotFoundError(f"reference fixtures missing at {REFERENCE}")
    return sorted(p.name.removesuffix(".expected.npz") for p in REFERENCE.glob("*.expected.npz"))


def reference_files(case: str) -> tuple[Path, Path, Path]:
    return (REFERENCE / f"{case}.pt", REFERENCE / f"{case}.all_config.yaml", REFERENCE / f"{case}.dataset.json")


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `trm-edge ARGS` in a fresh interpreter, exactly as a user types it."""
    proc = subprocess.run([sys.executable, "-m", "trm_edge", *args], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"trm-edge {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_cli_in_process(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """`trm-edge ARGS` through the same entry point and error handler, in this interpreter: for
    tests that try many bad command lines (a fresh interpreter costs 1-4 s each; see
    `cli_runner_for_many_cases`), and for a fixture's export or convert whose start-up is not what
    its tests check. `check`: a failure raises, as `run_cli`'s does. Not for commands that set
    process-wide state the rest of the session would run under (train and the PyTorch timings set
    torch's threads)."""
    import contextlib
    import io

    from trm_edge.app.cli import run

    out, err = io.StringIO(), io.StringIO()
    argv, sys.argv = sys.argv, ["trm-edge", *args]
    code: int | str | None = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            run()
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = argv
    # SystemExit carries None (success), an int, or a message (failure, as the interpreter exits 1).
    returncode = 0 if code is None else code if isinstance(code, int) else 1
    if check and returncode != 0:
        raise AssertionError(f"trm-edge {' '.join(args)} failed ({returncode}):\n{out.getvalue()}\n{err.getvalue()}")
    return subprocess.CompletedProcess(["trm-edge", *args], returncode, out.getvalue(), err.getvalue())


def cli_runner_for_many_cases() -> Callable[..., subprocess.CompletedProcess[str]]:
    """For a test that tries many command lines that should fail: the first of each subcommand runs
    in a fresh interpreter as users run it (start-up output included), the rest in this one."""
    seen: set[str] = set()

    def run_case(*args: str) -> subprocess.CompletedProcess[str]:
        fresh = args[0] not in seen
        seen.add(args[0])
        return run_cli(*args, check=False) if fresh else run_cli_in_process(*args)

    return run_case


def cpu_triton_copy(repository: Path, dest: Path) -> Path:
    """A copy of an exported Triton repository that the Triton in the nvidia-pytriton wheel can load:
    that binary has only the Python backend, so the init/step graphs (onnxruntime_onnx in production)
    run through tests/triton_models/onnx_in_python.py on the CPU. The solver model, its BLS loop and
    the configs' tensors are the real ones."""
    import shutil

    shutil.copytree(repository, dest)
    for name in ("trm_solver_init", "trm_solver_step"):
        config = dest / name / "config.pbtxt"
        config.write_text(config.read_text().replace('backend: "onnxruntime"', 'backend: "python"')
                          .replace("KIND_GPU", "KIND_CPU"))
        shutil.copyfile(REPO / "tests" / "triton_models" / "onnx_in_python.py", dest / name / "1" / "model.py")
    return dest


@pytest.fixture(autouse=True)
def torch_threads_kept() -> Iterator[None]:
    """Each test starts on the torch threads the one before it started on: a trainer run in process
    sets them for its whole process (a recipe's train.threads: 1 in tests/test_train.py), which
    left every PyTorch step after it on one core (test_trained_fixture's two steps on 300 puzzles
    took 17 s instead of 9 on 2 cores)."""
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    yield
    if torch is not None and threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def converted_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each reference case converted once to a trm-edge checkpoint, for the tests that need one."""
    from trm_edge.checkpoint import save_checkpoint
    from trm_edge.convert import convert_official

    out = tmp_path_factory.mktemp("converted")
    paths = {}
    for case in reference_cases():
        model = convert_official(*reference_files(case))
        paths[case] = save_checkpoint(model, out / f"{case}.safetensors", info=model.info)
    return paths


def tiny_checkpoint_file(path: Path, seed: int = 0) -> Path:
    """An untrained Sudoku TRM of hidden size 32 (87k parameters): exports in a few seconds."""
    import torch

    from trm_edge.checkpoint import save_checkpoint
    from trm_edge.config import ModelConfig
    from trm_edge.model import RecursiveReasoningModel

    torch.manual_seed(seed)
    config = ModelConfig(arch="trm", seq_len=81, vocab_size=11, hidden_size=32, num_heads=2, expansion=2, mlp_t=True,
                         pos_encodings="none", L_layers=1, H_cycles=1, L_cycles=1, halt_max_steps=4, task="sudoku")
    return save_checkpoint(RecursiveReasoningModel(config), path)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint_file(tmp_path_factory.mktemp("tiny") / "tiny.safetensors")


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Sudoku TRM trained with the official code, converted."""
    from trm_edge.checkpoint import save_checkpoint
    from trm_edge.convert import convert_official

    model = convert_official(
        TRAINED / "official_sudoku_mlp128.pt",
        TRAINED / "official_sudoku_mlp128.all_config.yaml",
        TRAINED / "official_sudoku_mlp128.dataset.json",
    )
    return save_checkpoint(model, tmp_path_factory.mktemp("trained") / "sudoku_mlp128.safetensors", info=model.info)


@pytest.fixture(scope="session")
def trained_export(trained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """...exported fp32 (validated on its held-out puzzles)."""
    import numpy as np

    from trm_edge.export.exporter import export_onnx

    puzzles = (np.load(TRAINED / "test_300.npz")["puzzles"][:16] + 1).astype(np.int32)
    return export_onnx(
        trained_checkpoint, tmp_path_factory.mktemp("trained_export") / "fp32", "fp32", tokens=puzzles
    ).directory


def export_reference_case(case: str, checkpoint: Path, out: Path, precision: str):  # type: ignore[no-untyped-def]
    """A reference case exported at `precision`, validated on the case's own inputs."""
    import numpy as np

    from trm_edge.export.exporter import export_onnx

    expected = np.load(REFERENCE / f"{case}.expected.npz")
    # Half precision validates over 2 looped steps, not 4: bf16 runs in ONNX's Python reference
    # evaluator, and the tests compare these graphs' own steps with the official outputs anyway.
    return export_onnx(checkpoint, out, precision=precision, tokens=expected["inputs"],
                       puzzle_identifiers=expected["puzzle_identifiers"],
                       validate_steps=4 if precision == "fp32" else 2)


@pytest.fixture(scope="session")
def trained_fixed16(trained_export: Path) -> list:  # type: ignore[type-arg]
    """The trained export's results on all of test_300.npz at the official loop (fixed 16 steps, ORT CPU),
    run once: the baseline several tests compare with."""
    import numpy as np

    from trm_edge.runtime.solver import Solver

    tokens = (np.load(TRAINED / "test_300.npz")["puzzles"] + 1).astype(np.int32)
    return Solver.load(trained_export, backend="ort-cpu", precision="fp32", slots=100,
                       halt="fixed:16").solve(list(tokens))


@pytest.fixture(scope="session")
def reference_fp32_exports(converted_reference: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Each reference case exported fp32 once for the whole session (the export results)."""
    out = tmp_path_factory.mktemp("reference_exports")
    return {case: export_reference_case(case, ckpt, out / case, "fp32") for case, ckpt in converted_reference.items()}


@pytest.fixture(scope="session")
def reference_exports(reference_fp32_exports: dict) -> dict[str, Path]:
    """Each reference case exported fp32: its export folder."""
    return {case: result.directory for case, result in reference_fp32_exports.items()}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Which fuzz examples this run tried (count and hash): equal on every run of a commit."""
    fuzzing = sys.modules.get("fuzzing")
    if fuzzing is not None and fuzzing.LEDGER.counts:
        ledger = fuzzing.LEDGER
        terminalreporter.write_line(f"fuzz examples: {ledger.summary()}")
        if terminalreporter.verbosity > 0:
            for name in sorted(ledger.counts):
                terminalreporter.write_line(f"  {name}: {ledger.counts[name]}, {ledger.hashes[name].hexdigest()[:16]}")


def js_tools_required() -> bool:
    """CI must run the Node and browser tests (.ci/run installs chromium and sets TRM_EDGE_REQUIRE_JS=1); elsewhere a
    machine without them skips those tests and says why."""
    from trm_edge.env_flags import flag_is_set

    return flag_is_set(REQUIRE_JS_ENV)


def npm_folder(folder: Path) -> Path:
    """`folder` (with its package.json and package-lock.json) with its node_modules installed."""
    import os
    import shutil

    if (folder / "node_modules").is_dir():
        return folder
    why = "node and npm are needed (Debian: apt-get install nodejs npm)" if not shutil.which("npm") else None
    if why is None:
        env = {**os.environ, "ONNXRUNTIME_NODE_INSTALL": "skip"}  # no CUDA binaries: the CPU provider is bundled
        proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=folder, capture_output=True, text=True,
                              timeout=600, env=env)
        why = None if proc.returncode == 0 else f"npm ci in {folder} failed: {proc.stderr[-400:]}"
    if why is not None:
        if js_tools_required():
            pytest.fail(why)
        pytest.skip(why)
    return folder


def chromium_path() -> str:
    """Debian's chromium (playwright-core drives it; no browser download)."""
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        why = "no chromium to drive (Debian: apt-get install chromium)"
        if js_tools_required():
            pytest.fail(why)
        pytest.skip(why)
    return found

