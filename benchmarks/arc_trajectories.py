"""ARC without a verifier: trajectories and the rules that choose among them, pass@1 and pass@2.

    python benchmarks/arc_trajectories.py EXPORT [--challenges C.json --solutions S.json] [--tasks 16]
                                         [--votes all] [--trajectories 1 3] [--scale 0.3] [--halt fixed:N]
    python benchmarks/arc_trajectories.py --train [--work benchmarks/results/arc_trajectories] [...]

Each test input of the first --tasks tasks the export knows is asked in --votes versions of its task
(as `trm-edge solve-arc --votes` asks them), each version as given and as T trajectories (its latent
state nudged by seeded noise of --scale), for T up to the largest of --trajectories. That is one
run: a trajectory's seed names its task, test input, version and number, so the T=1 figures are the
T=3 run's first trajectories, as a T=1 run would give them. The answers are then tallied for T = 0
(symmetry voting alone: the versions as given) and for each T, under each rule (vote, confidence,
both: trm_edge/tasks/arc_vote.py), and scored against the solutions: pass@1, pass@2, and pass@any
(the true output among any candidate on the ballot: what no rule can beat); with the mean number of
distinct candidates per test input and the share of test inputs whose first attempt is the one
symmetry voting alone gives (what the trajectories and the rule changed, right or wrong). Every
version runs the same steps (--halt, default fixed at the export's step bound, as the official
evaluation runs).

Without an export, --train builds one as benchmarks/arc_end_to_end.py does (`trm-edge data arc`, the
first 16 training and evaluation tasks of ../shared/data/arc-agi, `train arc-tiny-cpu`, `export`), a
few minutes on 2 cores, and asks that model's evaluation tasks. That model learns but solves little:
its figures show the benchmark works, not what trajectories are worth on a trained ARC model.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from harness import machine, write_json
from rich.console import Console
from rich.table import Table

from trm_edge.contract.export_dir import METADATA_FILE, read_metadata
from trm_edge.runtime.arc import ArcRunner, ArcTrajectories, Job, Prediction, score, tally
from trm_edge.runtime.solver import Solver
from trm_edge.runtime.trajectories import Noise
from trm_edge.tasks.arc_tasks import ArcTask, read_arc_tasks
from trm_edge.tasks.arc_vote import RULES, grid_key

ANY = 10**9  # pass@k with k past every candidate: the true output is anywhere on the ballot


def trained_export(work: Path) -> tuple[Path, Path, Path]:
    """arc_end_to_end's first two stages (data arc, train arc-tiny-cpu) and an fp32 export, kept in
    `work` and reused on the next run; with the evaluation tasks it trained on."""
    from arc_end_to_end import DATA, cli, evaluation_subset

    dataset, run, export = work / "data", work / "run", work / "export"
    work.mkdir(parents=True, exist_ok=True)
    if not (export / METADATA_FILE).exists():
        cli("data", "arc", "-o", str(dataset), "--source", str(DATA), "--subsets", "training,evaluation",
            "--test-set", "evaluation", "--augment", "8", "--max-tasks", "16")
        cli("train", "arc-tiny-cpu", "--data", str(dataset), "-o", str(run), "--device", "cpu")
        cli("export", str(run / "final.safetensors"), "-o", str(export), "--precision", "fp32")
    challenges, solutions = evaluation_subset(dataset, work)
    return export, challenges, solutions


def scores(
    tasks: list[ArcTask], plan: dict[str, Any], jobs: list[Job], predictions: list[Prediction], known: set[str],
    most: int, rule: str,
) -> tuple[dict[str, float], list[bytes]]:
    """pass@1, pass@2, pass@any and the mean candidates per test input of the runs with at most
    `most` trajectories a version, by `rule`; and each test input's first attempt (as a key)."""
    keep = [k for k, job in enumerate(jobs) if job.trajectory <= most]
    answers = tally(tasks, plan, [jobs[k] for k in keep], [predictions[k] for k in keep], known, rule)
    found = score(answers, tasks, ks=(1, 2, ANY))
    ballots = [test.ballot for answer in answers for test in answer.tests]
    figures = {"pass@1": found["pass@1"], "pass@2": found["pass@2"], "pass@any": found[f"pass@{ANY}"],
               "tasks": found["tasks"], "runs": len(keep),
               "candidates": sum(len(b.candidates) for b in ballots) / len(ballots)}
    return figures, [grid_key(b.attempts(1)[0]) for b in ballots]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, nargs="?", help="an ARC export (omit with --train)")
    parser.add_argument("--train", action="store_true", help="no export: build and train arc-tiny-cpu first")
    parser.add_argument("--work", type=Path, default=Path("benchmarks/results/arc_trajectories"))
    parser.add_argument("--challenges", type=Path, help="Kaggle challenges JSON (with --train: the trained tasks)")
    parser.add_argument("--solutions", type=Path, help="Kaggle solutions JSON")
    parser.add_argument("--tasks", type=int, default=16, help="the first N tasks the export knows")
    parser.add_argument("--votes", default="all", help="versions per test input: N or all")
    parser.add_argument("--trajectories", type=int, nargs="+", default=[1, 3], help="the T values to score")
    parser.add_argument("--scale", type=float, default=Noise().scale, help="the noise, relative to the state")
    parser.add_argument("--halt", default=None, help="halting policy (default fixed:the export's step bound)")
    parser.add_argument("--backend", default="ort-cpu", help="runtime backend (default ort-cpu, fp32)")
    parser.add_argument("--json", type=Path, default=None, help="default WORK/results.json")
    args = parser.parse_args()
    if args.train:
        export, challenges, solutions = trained_export(args.work.resolve())
    elif args.export is None or args.challenges is None or args.solutions is None:
        parser.error("give EXPORT with --challenges and --solutions, or --train")
    else:
        export, challenges, solutions = args.export, args.challenges, args.solutions
    console = Console(width=150)  # the whole table in a log, not wrapped at 80 columns
    halt = args.halt or f"fixed:{read_metadata(export).halting.max_steps}"
    solver = Solver.load(export, backend=args.backend, precision="fp32", halt=halt)
    runner = ArcRunner(solver)
    tasks = [t for t in read_arc_tasks(challenges, solutions) if t.name in runner.versions][:args.tasks]
    if not tasks:
        raise SystemExit(f"the export knows none of the tasks in {challenges}")
    plan = runner.plan(tasks, None if args.votes == "all" else int(args.votes), "error")
    most = max(args.trajectories)
    trajectories = ArcTrajectories(most, Noise(args.scale))
    started = time.perf_counter()
    jobs, predictions = runner.predict(tasks, plan, trajectories)
    seconds = time.perf_counter() - started
    known = set(runner.versions)
    rows, baseline = [], None
    for t in [0, *sorted(set(args.trajectories) - {0})]:
        for rule in RULES:
            figures, firsts = scores(tasks, plan, jobs, predictions, known, t, rule)
            baseline = baseline or firsts  # symmetry voting alone, by vote: what solve-arc does by default
            same = sum(a == b for a, b in zip(firsts, baseline, strict=True)) / len(firsts)
            rows.append({"trajectories": t, "rule": rule, **figures, "same_attempt_1": same})
    table = Table(title=f"ARC, {len(tasks)} tasks, votes {args.votes}, {halt}, noise {args.scale}; T=0: symmetry "
                        f"voting alone ({machine()})")
    for column in ("T", "rule", "runs", "pass@1", "pass@2", "pass@any", "candidates", "attempt 1 as T=0 vote's"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(str(r["trajectories"]), r["rule"], str(r["runs"]),
                      *(f"{100 * r[k]:.1f}%" for k in ("pass@1", "pass@2", "pass@any")),
                      f"{r['candidates']:.2f}", f"{100 * r['same_attempt_1']:.0f}%")
    console.print(table)
    console.print(f"{len(jobs)} runs in {seconds:.1f} s ({solver.backend_name})")
    out = args.json or args.work / "results.json"
    write_json(out, {"export": str(export), "challenges": str(challenges), "tasks": len(tasks), "votes": args.votes,
                     "halt": halt, "scale": args.scale, "backend": solver.backend_name, "run_s": round(seconds, 1),
                     "rows": rows})
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
