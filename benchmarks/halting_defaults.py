"""Which halting defaults keep accuracy: every candidate policy replayed on every model we have.

    python benchmarks/halting_defaults.py [--out benchmarks/results/halting_defaults] [--puzzles 256]

Models: the Sudoku TRM trained with the official code (tests/fixtures/trained, on its 300
held-out puzzles and on 500 freshly generated ones), the shipped sudoku-small model (its held-out
puzzles, and 200-puzzle samples of two hard lists of ../shared/data/sudoku-sources, where many
puzzles verify only late), and the random-weight (damped) reference fixtures (TRM MLP/attention Sudoku, HRM Sudoku,
a learned-position maze TRM, an ARC TRM) on generated inputs. Each runs max steps once per puzzle
(ONNX Runtime CPU); every policy is replayed on that recording (the rule the runtime applies live).
Trained models are scored by their labels; random-weight ones by agreement with their own
max-steps answer (a label-free default must not change what fixed max steps would answer).

Prints and writes (JSON + Markdown) the table, and the two defaults it supports:
- VERIFIED_FALLBACK: among the verified policies with a fallback, the one with the fewest mean
  steps (averaged over the labelled sets that verify) whose exact accuracy stays within one point
  of `verified,max` (verify up to max steps) on each of them;
- LABEL_FREE_DEFAULT: the label-free policy with the fewest mean steps whose loss against fixed
  max steps is at most 0.5 points on every model.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from harness import hard_list, machine

from trm_edge.checkpoint import save_checkpoint
from trm_edge.contract.held_out import LabelledPuzzles, load_puzzles
from trm_edge.convert import convert_official
from trm_edge.export.exporter import export_onnx
from trm_edge.runtime.calibrate import Recording, Replay, candidate_policies, correctness, record
from trm_edge.runtime.halting import simulate
from trm_edge.runtime.solver import Solver
from trm_edge.shipped import shipped_checkpoint, shipped_heldout
from trm_edge.tasks import ArcCodec
from trm_edge.train.maze_generator import generate_mazes
from trm_edge.train.sudoku_generator import generate_sudokus

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
HARD_LISTS = ("puzzles3_magictour_top1465", "puzzles5_forum_hardest_1905_11+")
MAX_LOSS = 0.005  # label-free default against fixed max steps
FALLBACK_LOSS = 0.01  # verified fallback against verifying up to max steps


def _sudokus(count: int, first: int) -> LabelledPuzzles:
    puzzles, solutions, _ = generate_sudokus(count, seed=2026, first=first)
    return LabelledPuzzles(puzzles.astype(np.int32) + 1, solutions.astype(np.int32) + 1, np.zeros(count, np.int32))


def _mazes(count: int, size: int) -> LabelledPuzzles:
    mazes, labels, _ = generate_mazes(count, size=size, min_path=size, seed=2026)
    return LabelledPuzzles(mazes.astype(np.int32), labels.astype(np.int32), np.zeros(count, np.int32))


def _arc_grids(count: int, size: int, ids: int) -> LabelledPuzzles:
    rng = np.random.default_rng(2026)
    codec = ArcCodec(size)
    rows = []
    for _ in range(count):
        h, w = rng.integers(1, size + 1, 2)
        rows.append(codec.encode_grid(rng.integers(0, 10, (h, w)).tolist()))
    return LabelledPuzzles(np.stack(rows), None, rng.integers(0, ids, count).astype(np.int32))


def models(work: Path, count: int) -> list[tuple[str, Path, LabelledPuzzles, bool]]:
    """(name, checkpoint, puzzles, scored by labels) for every model measured."""
    trained = FIXTURES / "trained"
    ckpt = convert_official(
        trained / "official_sudoku_mlp128.pt",
        trained / "official_sudoku_mlp128.all_config.yaml",
        trained / "official_sudoku_mlp128.dataset.json",
    )
    trained_path = save_checkpoint(ckpt, work / "trained.safetensors", info=ckpt.info)
    out = [
        ("trained fixture, test_300", trained_path, load_puzzles(trained / "test_300.npz"), True),
        ("trained fixture, 500 generated", trained_path, _sudokus(500, first=5_000_000), True),
        ("shipped sudoku-small, held-out", shipped_checkpoint(), load_puzzles(shipped_heldout()), True),
    ]
    # Hard lists, far harder than what it was trained on: puzzles that verify late must not be cut off.
    for name in HARD_LISTS:
        out.append((f"shipped sudoku-small, {name} (200)", shipped_checkpoint(), hard_list(name, 200), True))
    reference = FIXTURES / "reference"
    for case in ("trm_mlp_sudoku", "trm_att_arc", "trm_att_learned_maze", "hrm_att_sudoku"):
        model = convert_official(
            reference / f"{case}.pt", reference / f"{case}.all_config.yaml", reference / f"{case}.dataset.json"
        )
        path = save_checkpoint(model, work / f"{case}.safetensors", info=model.info)
        cfg = model.config
        side = round(cfg.seq_len**0.5)
        # The fixtures' dataset.json names no task: their vocabularies tell (6 maze, 12 ARC, 11 Sudoku).
        if cfg.vocab_size == 6:
            puzzles = _mazes(count, side)
        elif cfg.vocab_size == 12:
            puzzles = _arc_grids(count, side, cfg.num_puzzle_identifiers)
        else:
            puzzles = _sudokus(count, first=0)
        out.append((f"{case} (random weights)", path, puzzles, False))
    return out


def measure(name: str, checkpoint: Path, puzzles: LabelledPuzzles, by_labels: bool, work: Path, cache: Path) -> dict:
    """Record (or reuse the cached recording of) max steps on every puzzle; replay every policy."""
    slug = name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
    cached = cache / f"{slug}.npz"
    if cached.is_file():
        saved = np.load(cached)
        recording = Recording(saved["answers"], saved["scores"], saved.get("verified"))
    else:
        directory = export_onnx(checkpoint, work / slug, "fp32", validate=False).directory
        solver = Solver.load(directory, backend="ort-cpu", slots=64, halt="model")
        recording = record(solver, puzzles, solver.max_steps)
        extra = {} if recording.verified is None else {"verified": recording.verified}
        np.savez_compressed(cached, answers=recording.answers, scores=recording.scores, **extra)
    steps = recording.answers.shape[0]
    # Random weights never verify: they are scored by agreement with their own max-steps answer.
    correct, scored_by = correctness(recording if by_labels else replace(recording, verified=None),
                                     puzzles.labels if by_labels else None)
    policies = candidate_policies(recording.verified is not None, steps)
    halts = {p.name: simulate(p, recording.answers, recording.scores, steps, recording.verified) for p in policies}
    replayed = Replay(recording, correct, scored_by, halts)
    summary = replayed.summary()
    ever = float(correct.any(axis=0).mean())
    print(f"\n{name}: {len(puzzles)} puzzles, {steps} steps max, scored by {scored_by}; "
          f"fixed {steps}: {100 * summary['exact_fixed']:.1f}%, right at some step: {100 * ever:.1f}%")
    return {"model": name, "puzzles": len(puzzles), "max_steps": steps, "right_at_some_step": ever, **summary}


def choose_defaults(results: list[dict]) -> dict:
    def rows(result: dict) -> dict[str, dict]:
        return {r["policy"]: r for r in result["policies"]}

    verifying = [r for r in results if "verified_by_step" in r and r["scored_by"] == "labels"]
    fallbacks = [p for p in rows(verifying[0]) if p.startswith("verified,")]
    keeps = [p for p in fallbacks
             if all(rows(r)[p]["exact"] >= rows(r)["verified,max"]["exact"] - FALLBACK_LOSS - 1e-9 for r in verifying)]
    keeps.sort(key=lambda p: np.mean([rows(r)[p]["mean_steps"] for r in verifying]))
    label_free = [p for p in rows(results[0]) if not p.startswith(("verified", "fixed"))]
    within = [p for p in label_free if all(rows(r)[p]["loss"] <= MAX_LOSS + 1e-9 for r in results)]
    by_steps = sorted(within, key=lambda p: np.mean([rows(r)[p]["mean_steps"] for r in results]))
    return {"verified_fallback": keeps[0], "verified_within_half_a_point": keeps, "label_free_default": by_steps[:1],
            "label_free_within_half_a_point": by_steps}


SHOWN = ("fixed:16", "model", "verified,max", "verified,stable:2", "verified,stable:4", "verified,threshold:0.99",
         "verified,max:4", "verified,max:6", "verified,max:8", "verified,stable:4,max:6", "verified,stable:4,max:8",
         "stable:1", "stable:2", "stable:3", "threshold:0.9", "threshold:0.99", "threshold:0.9,stable:2")


def markdown(results: list[dict], defaults: dict) -> str:
    lines = [f"CPU: {machine()}", "", "| model | policy | exact | mean steps | loss vs fixed | verified |",
             "|---|---|---|---|---|---|"]
    for result in results:
        for row in result["policies"]:
            if row["policy"] in SHOWN:
                verified = f"{100 * row['verified']:.1f}%" if "verified" in row else "-"
                lines.append(f"| {result['model']} | {row['policy']} | {100 * row['exact']:.1f}% | "
                             f"{row['mean_steps']:.2f} | {100 * row['loss']:+.1f} | {verified} |")
    lines += ["", f"verified policies within a point of verified,max on every verifying model, fewest steps first: "
              f"{', '.join(defaults['verified_within_half_a_point'][:6])}",
              f"label-free within 0.5 points on every model, fewest steps first: "
              f"{', '.join(defaults['label_free_within_half_a_point'][:6])}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/halting_defaults"))
    parser.add_argument("--puzzles", type=int, default=256, help="generated inputs per random-weight model")
    args = parser.parse_args()
    cache = args.out / "recordings"  # delete it to record again (after retraining, say)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        results = [measure(*m, work, cache) for m in models(work, args.puzzles)]
    defaults = choose_defaults(results)
    text = markdown(results, defaults)
    print(text)
    (args.out / "halting_defaults.json").write_text(json.dumps({"results": results, "defaults": defaults}, indent=1))
    (args.out / "halting_defaults.md").write_text(text)


if __name__ == "__main__":
    main()
