"""Export validation: run the exported graphs on real inputs and compare with PyTorch.

Two checks, as the design asks: one step from the initial state (every output, max abs diff
against a per-precision tolerance), and the answers after N looped steps (the fraction of cells
on which the graph and PyTorch agree). Graphs run in ONNX Runtime's CPU provider; where it has no
kernels for the precision (bfloat16), in ONNX's reference evaluator, an independent implementation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trm_edge.errors import TrmEdgeError
from trm_edge.model import RecursiveReasoningModel

# Max abs diff allowed on each step-1 output against float32 PyTorch, relative to the output's
# scale: limit = RTOL * max(1, max |reference|). Trained TRMs have logits near 100, so an absolute
# limit would be either meaningless for them or unreachable in half precision.
DEFAULT_RTOL = {"fp32": 1e-4, "fp16": 5e-2, "bf16": 0.25}
# int8 is held to what matters instead. A value on the other side of a rounding boundary moves by a
# whole quantum, and a step applies the net a dozen times, so single state values may differ by a
# quarter of the state's range while the answers agree: the states and logits are bounded by their
# RMS error relative to the reference's RMS (the shipped fine-tunes: 2.2-3.1% for the states, 1.0-1.3%
# for the logits; a wrong scale is 50-100%), and the halting logits by an absolute bar in logits
# (measured 0.10-0.20), so no halting decision the reference takes by more than that margin flips.
INT8_MAX_RELATIVE_ERROR = 0.10
INT8_HALT_ATOL = 1.0
# ...and the step-1 halting decisions (the model's own rule) must agree on 90% of the puzzles: a
# reference logit within a rounding error of its threshold may flip (the shipped fine-tunes: none of 32).
INT8_MIN_DECISION_AGREEMENT = 0.90
# Fraction of answer cells that must agree after the looped steps. Validation runs on random
# tokens unless given real puzzles; a trained model's answers to random tokens are chaotic in half
# precision, so the half-precision bars catch a broken graph (which agrees on ~1/vocab of cells),
# not rounding. On real puzzles the trained fixtures agree on >99% (see tests/test_export.py).
MIN_AGREEMENT = {"fp32": 0.999, "fp16": 0.95, "bf16": 0.90, "int8": 0.98}
# An int8 graph is held to its PyTorch simulation (the fake-quantized model: the same rounding, so
# only a flip at a rounding boundary differs) by the bars above, and to the float model it came
# from by this one, the bf16 bar (what int8 costs in answers is measured in benchmarks/int8.py).
MIN_AGREEMENT_WITH_FLOAT = 0.90


@dataclass
class Check:
    name: str
    value: float
    limit: float
    # "max_abs_diff" and "relative_error" (RMS of the difference over the reference's RMS): value <=
    # limit; "agreement" (a fraction that must agree): value >= limit.
    kind: str

    @property
    def is_upper_bound(self) -> bool:
        return self.kind != "agreement"

    @property
    def passed(self) -> bool:
        return self.value <= self.limit if self.is_upper_bound else self.value >= self.limit


@dataclass
class ValidationReport:
    precision: str
    engine: str
    batch: int
    steps: int
    checks: list[Check] = field(default_factory=list)
    # The puzzles validated on (kept in the export as validation.npz: the runtime checks a lower
    # inference precision on them) and whether they were real puzzles or random tokens.
    tokens: np.ndarray | None = field(default=None, repr=False)
    puzzle_identifiers: np.ndarray | None = field(default=None, repr=False)
    real_puzzles: bool = False
    puzzles: str = ""  # what they were, in words

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "puzzles": self.puzzles,
            "real_puzzles": self.real_puzzles,
            "engine": self.engine,
            "batch": self.batch,
            "steps": self.steps,
            "passed": self.passed,
            "checks": [{**asdict(c), "passed": c.passed} for c in self.checks],
        }

    def failures(self) -> str:
        bad = [c for c in self.checks if not c.passed]
        return "; ".join(
            f"{c.name}: {c.value:.3g} {'>' if c.is_upper_bound else '<'} {c.limit:.3g}" for c in bad
        )


class GraphRunner:
    """init.onnx + step.onnx behind one call each, on ORT CPU or the ONNX reference evaluator."""

    def __init__(self, export_dir: Path, prefer_reference: bool = False, step_file: str = "step.onnx") -> None:
        self.engine = "onnxruntime CPU"
        self._init = self._step = None
        if not prefer_reference:
            try:
                import onnxruntime
            except ImportError:
                raise TrmEdgeError("export validation runs the graphs in ONNX Runtime: pip install "
                                   "'trm-edge[cpu]', or export with --no-validate") from None
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            try:
                self._init, self._step = (
                    onnxruntime.InferenceSession(str(export_dir / name), sess_options=options,
                                                 providers=["CPUExecutionProvider"])
                    for name in ("init.onnx", step_file))
            except Exception as exc:  # no CPU kernels for this dtype: NOT_IMPLEMENTED at load
                if "NOT_IMPLEMENTED" not in str(exc):
                    raise
        if self._step is None:
            from onnx.reference import ReferenceEvaluator

            self.engine = "onnx reference evaluator"
            ops = _float32_accumulating_ops()
            self._init = ReferenceEvaluator(str(export_dir / "init.onnx"), new_ops=ops)
            self._step = ReferenceEvaluator(str(export_dir / step_file), new_ops=ops)

    def init(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._init.run(None, feeds)[0]

    def step(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._step.run(None, feeds)


def _float32_accumulating_ops() -> list[type]:
    """MatMul and Gemm that accumulate in float32 and round the result, as GPU tensor cores and
    AMX do; numpy's bfloat16 matmul would accumulate in bfloat16 and overstate the error."""
    from onnx.reference.op_run import OpRun

    class MatMul(OpRun):
        def _run(self, a, b):  # type: ignore[no-untyped-def]
            return (np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(a.dtype),)

    class Gemm(OpRun):
        def _run(self, a, b, c=None, alpha=1.0, beta=1.0, transA=0, transB=0):  # type: ignore[no-untyped-def]
            a32, b32 = a.astype(np.float32), b.astype(np.float32)
            y = alpha * ((a32.T if transA else a32) @ (b32.T if transB else b32))
            if c is not None:
                y = y + beta * c.astype(np.float32)
            return (y.astype(a.dtype),)

    return [MatMul, Gemm]


def sample_inputs(model: RecursiveReasoningModel, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic valid tokens and puzzle ids (tokens avoid id 0, the padding token)."""
    c = model.config
    rng = np.random.default_rng(seed)
    low = 1 if c.vocab_size > 1 else 0
    tokens = rng.integers(low, c.vocab_size, size=(batch, c.seq_len), dtype=np.int32)
    ids = rng.integers(0, c.num_puzzle_identifiers, size=(batch,), dtype=np.int32)
    return tokens, ids


def validate_export(
    model: RecursiveReasoningModel,
    export_dir: Path,
    precision: str,
    atol: float | None = None,
    steps: int = 4,
    tokens: np.ndarray | None = None,
    puzzle_identifiers: np.ndarray | None = None,
    batch: int = 4,
    seed: int = 0,
    real_puzzles: bool | None = None,
    puzzles_description: str = "",
    step_file: str = "step.onnx",
    float_model: RecursiveReasoningModel | None = None,
    runner: Any = None,
) -> ValidationReport:
    """Compare the graphs in `export_dir` with `model` (float32 PyTorch) on `tokens` (random
    tokens when None); `real_puzzles` says whether they are real puzzles (default: given ones are).
    An int8 step (`step_file`) is compared with its fake-quantized `model` and, for the answers,
    with the `float_model` it was made from too. `runner` runs another runtime's programs of the same
    graphs in place of the ONNX ones (an `engine` name, `init(feeds)`, `step(feeds)`: trm_edge/programs.py)."""
    model = model.float().eval()
    c = model.config
    real_puzzles = tokens is not None if real_puzzles is None else real_puzzles
    if tokens is None:
        tokens, puzzle_identifiers = sample_inputs(model, batch, seed)
    if puzzle_identifiers is None:
        puzzle_identifiers = np.zeros(len(tokens), dtype=np.int32)
    tokens = np.ascontiguousarray(tokens, dtype=np.int32)
    puzzle_identifiers = np.ascontiguousarray(puzzle_identifiers, dtype=np.int32)
    runner = runner or GraphRunner(export_dir, step_file=step_file)
    what = "puzzles" if real_puzzles else "random token sequences"
    report = ValidationReport(precision, runner.engine, len(tokens), steps, tokens=tokens,
                              puzzle_identifiers=puzzle_identifiers, real_puzzles=real_puzzles,
                              puzzles=puzzles_description or f"{len(tokens)} {what}")

    feeds = {"tokens": tokens}
    if c.puzzle_emb_ndim > 0:
        feeds["puzzle_identifiers"] = puzzle_identifiers
    x_emb = runner.init(feeds)
    z_H = z_L = np.zeros((len(tokens), c.total_len, c.hidden_size), dtype=x_emb.dtype)
    reset = np.ones(len(tokens), dtype=bool)

    t_tokens = torch.from_numpy(tokens)
    t_ids = torch.from_numpy(puzzle_identifiers) if c.puzzle_emb_ndim > 0 else None
    state = model.initial_state(len(tokens))
    float_state = float_model.float().eval().initial_state(len(tokens)) if float_model is not None else None
    names = ("z_H_next", "z_L_next", "logits", "q_halt", "q_continue")
    with torch.no_grad():
        for k in range(steps):
            state, logits, q_halt, q_cont = model.step(state, t_tokens, t_ids)
            if float_model is not None:
                float_state, float_logits, _, _ = float_model.step(float_state, t_tokens, t_ids)
            z_H, z_L, g_logits, g_answer, g_halt, g_cont = runner.step(
                {"x_emb": x_emb, "z_H": z_H, "z_L": z_L, "reset": reset}
            )
            reset = np.zeros_like(reset)
            if k == 0:
                ours = (z_H, z_L, g_logits, g_halt, g_cont)
                theirs = (state.z_H, state.z_L, logits, q_halt, q_cont)
                for name, a, b in zip(names, ours, theirs, strict=True):
                    report.checks.append(_step_one_check(name, a.astype(np.float32), b.float().numpy(), precision,
                                                         atol))
                if precision == "int8":
                    graph_halts = model.halted(torch.from_numpy(g_halt), torch.from_numpy(g_cont)).numpy()
                    decided = float((graph_halts == model.halted(q_halt, q_cont).numpy()).mean())
                    report.checks.append(Check("step 1 halting decisions", decided, INT8_MIN_DECISION_AGREEMENT,
                                               "agreement"))
        agreement = float((g_answer == logits.argmax(-1).numpy()).mean())
        report.checks.append(Check(f"answers after {steps} steps", agreement, MIN_AGREEMENT[precision], "agreement"))
        if float_model is not None:
            with_float = float((g_answer == float_logits.argmax(-1).numpy()).mean())
            report.checks.append(Check(f"answers after {steps} steps, against float32", with_float,
                                       MIN_AGREEMENT_WITH_FLOAT, "agreement"))
    return report


def _step_one_check(name: str, got: np.ndarray, ref: np.ndarray, precision: str, atol: float | None) -> Check:
    """One step-1 output against float32 PyTorch, by the precision's rule (see DEFAULT_RTOL and
    INT8_MAX_RELATIVE_ERROR); `atol` replaces a max-abs-diff limit."""
    diff = got - ref
    if precision == "int8" and not name.startswith("q_"):
        rms = float(np.sqrt(np.mean(np.square(ref))))
        relative = float(np.sqrt(np.mean(np.square(diff)))) / max(rms, 1e-12)
        return Check(f"step 1 {name} (RMS error / RMS)", relative, INT8_MAX_RELATIVE_ERROR, "relative_error")
    if atol is not None:
        limit = atol
    elif precision == "int8":
        limit = INT8_HALT_ATOL
    else:
        limit = DEFAULT_RTOL[precision] * max(1.0, float(np.abs(ref).max()))
    return Check(f"step 1 {name}", float(np.abs(diff).max()), limit, "max_abs_diff")


def failure_message(report: ValidationReport, kept_at: Path | None = None, unchanged: Path | None = None) -> str:
    """A failed validation in one line: what failed, where the build was kept, what to do."""
    where = ""
    if kept_at is not None:
        left = f"; the export at {unchanged} was left as it was" if unchanged is not None else ""
        where = f" (kept for inspection at {kept_at}; the runtime refuses it{left})"
    return (f"validation failed ({report.precision}, {report.engine}): {report.failures()}{where}. The exported "
            "graph does not reproduce PyTorch; pass --atol to accept larger differences knowingly, or export fp32")
