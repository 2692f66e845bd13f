"""When do test-time versions verify, what do the hopeless ones look like, and which rule stops them
early: chosen on sample B of the version traces, confirmed on sample A (the draw the versions
benchmark and the acceptance figures use).

    python benchmarks/version_cuts.py [--traces benchmarks/results/version_traces] [--versions 8 16]
                                      [--choose-on B] [--json benchmarks/results/version_cuts.json]

Reads the traces benchmarks/version_traces.py wrote and replays VersionedRun on them (one version of
a puzzle at a time, the plain one first; a version ends at its first verified answer, by the
default fallback `stable:1`, by the cut rule, or after the last step; the first verified version
answers), for every candidate rule: a version that has not verified by step T is stopped when its
answer still breaks at least B cells (tasks/sudoku.rule_breaks). The
rule chosen is the one with the fewest version-steps (at the largest --versions) that solves no
fewer puzzles than no rule at all on each of the chosen sample's three lists; it is then checked on
the other sample, which it has not seen.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

LISTS = ("magictour_top1465", "forum_hardest_1905_11+", "forum_hardest_1106")
CUT_STEPS = (2, 3, 4, 5, 6, 8, 10, 12)
CUT_BREAKS = (1, 2, 4, 6, 8, 10, 12, 16, 20, 24, 28, 32, 36, 44)
# What early_signals tries, per version (lower: more likely to verify later)
MEASURES = ("rule breaks", "fall in breaks over 2 steps", "fewest breaks so far", "halting score")


@dataclass(frozen=True)
class Cut:
    step: int | None  # a version unverified after this many steps is stopped when...
    breaks: int | None  # ...its answer breaks at least this many cells

    @property
    def name(self) -> str:
        return "no cut" if self.step is None else f"stop at step {self.step} if >= {self.breaks} cells break"


def replay(trace: dict[str, np.ndarray], versions: int, cut: Cut) -> dict[str, float]:
    """Solved share, wrong-verified count and mean version-steps of VersionedRun with `cut`."""
    verified, changed, breaks, right = (trace[k][:, :, :versions] for k in ("verified", "changed", "breaks", "right"))
    steps, puzzles, _ = verified.shape
    t = np.arange(1, steps + 1)[:, None, None]
    ends = verified | (~changed & (t > 1))  # verified, or the default fallback stable:1
    if cut.step is not None:
        ends = ends | ((t == cut.step) & (breaks >= cut.breaks))
    ends[-1] = True
    end = ends.argmax(axis=0)  # (puzzles, versions): 0-based step each version ends at
    won = np.take_along_axis(verified, end[None], axis=0)[0]  # it ended verified
    correct = np.take_along_axis(right, end[None], axis=0)[0]
    cost = end + 1
    first = np.where(won.any(axis=1), won.argmax(axis=1), versions)  # the version that answers
    spent = np.array([cost[i, : min(first[i] + 1, versions)].sum() for i in range(puzzles)])
    solved = first < versions
    wrong = sum(not correct[i, first[i]] for i in range(puzzles) if solved[i])
    return {"solved": float(solved.mean()), "wrong_verified": int(wrong), "mean_version_steps": float(spent.mean())}


def when_versions_verify(trace: dict[str, np.ndarray], versions: int) -> dict[str, object]:
    """Of the versions that verify within the steps: at which step; and at each step, in versions
    that verify later against versions that never do: how many cells still break (median and the
    tail that a cut must spare), the halting score (median) and the share whose answer changed."""
    verified, breaks = trace["verified"][:, :, :versions], trace["breaks"][:, :, :versions]
    score, changed = trace["score"][:, :, :versions], trace["changed"][:, :, :versions]
    steps = verified.shape[0]
    ever = verified.any(axis=0)
    first = verified.argmax(axis=0) + 1
    hist = np.bincount(first[ever], minlength=steps + 1)[1:]
    out: dict[str, object] = {"versions": int(ever.size), "verify": int(ever.sum()),
                              "first_verified_step": hist.tolist()}
    for step in (s for s in (2, 4, 6, 8) if s <= steps):
        later = ever & (first > step)
        at = breaks[step - 1]
        for group, mask in (("verify_later", later), ("never", ~ever)):
            if not mask.any():
                continue
            out[f"step_{step}_{group}"] = {
                "versions": int(mask.sum()),
                "breaks_median": float(np.median(at[mask])),
                "breaks_p90" if group == "verify_later" else "breaks_p10":
                    float(np.percentile(at[mask], 90 if group == "verify_later" else 10)),
                "halt_score_median": float(np.median(score[step - 1][mask])),
                "answer_changed": round(float(changed[step - 1][mask].mean()), 3),
            }
    return out


def separation(positive: np.ndarray, negative: np.ndarray) -> float:
    """How well a measure tells two groups apart: the chance that a random member of `positive`
    scores lower than a random member of `negative` (ties count half; 0.5: not at all, 1: fully)."""
    p, q = positive.astype(float)[:, None], negative.astype(float)[None, :]
    return float(((p < q).sum() + 0.5 * (p == q).sum()) / (p.size * q.size))


def early_signals(trace: dict[str, np.ndarray], versions: int) -> dict[str, dict[str, float]]:
    """Could anything seen early tell a version (or a puzzle) that will verify from one that never
    does? `separation` of each measure (lower is more promising), per version at steps 3, 5 and 8
    (versions that verify after that step against versions that never verify), and per puzzle after
    its first 4 versions failed (puzzles a later version solves against puzzles none does)."""
    verified, breaks, score = (trace[k][:, :, :versions] for k in ("verified", "breaks", "score"))
    ever, first = verified.any(axis=0), verified.argmax(axis=0) + 1
    out: dict[str, dict[str, float]] = {}
    for step in (s for s in (3, 5, 8) if s <= len(verified)):
        later = ever & (first > step)
        measures = dict(zip(MEASURES, (breaks[step - 1], breaks[step - 1] - breaks[step - 3],
                                       breaks[:step].min(axis=0), -score[step - 1]), strict=True))
        out[f"version, step {step}"] = {k: round(separation(m[later], m[~ever]), 3) for k, m in measures.items()}
    tried = min(4, versions - 1)
    failed_first = ~verified[:, :, :tried].any(axis=(0, 2))
    solved_later = verified[:, :, tried:].any(axis=(0, 2))
    fewest = breaks[:, :, :tried].min(axis=(0, 2))
    hopeful, hopeless = fewest[failed_first & solved_later], fewest[failed_first & ~solved_later]
    out[f"puzzle, after {tried} versions"] = {"fewest breaks so far": round(separation(hopeful, hopeless), 3)}
    return out


def load(folder: str, sample: str) -> dict[str, dict[str, np.ndarray]]:
    return {name: dict(np.load(f"{folder}_{name}_{sample}.npz")) for name in LISTS}


def choose(traces: dict[str, dict[str, np.ndarray]], versions: int) -> tuple[Cut, list[dict[str, object]]]:
    """The candidate with the fewest version-steps summed over the lists that solves no fewer
    puzzles than no cut on every list (ties: the earlier step, then the larger break count)."""
    baseline = {name: replay(t, versions, Cut(None, None)) for name, t in traces.items()}
    rows = []
    best, best_cost = Cut(None, None), sum(b["mean_version_steps"] for b in baseline.values())
    for step in CUT_STEPS:
        for breaks in sorted(CUT_BREAKS, reverse=True):  # on a tie, the rule that cuts less
            cut = Cut(step, breaks)
            figures = {name: replay(t, versions, cut) for name, t in traces.items()}
            keeps = all(figures[n]["solved"] >= baseline[n]["solved"] for n in traces)
            cost = sum(f["mean_version_steps"] for f in figures.values())
            rows.append({"cut": cut.name, "keeps_every_solve": keeps, "mean_version_steps_sum": round(cost, 2)})
            if keeps and cost < best_cost:
                best, best_cost = cut, cost
    return best, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", default="benchmarks/results/version_traces")
    parser.add_argument("--versions", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--choose-on", choices=("A", "B"), default="B")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/version_cuts.json"))
    args = parser.parse_args()
    console = Console()
    a, b = load(args.traces, "A"), load(args.traces, "B")
    chosen_on = b if args.choose_on == "B" else a
    report: dict[str, object] = {"when": {name: when_versions_verify(t, max(args.versions)) for name, t in a.items()}}
    console.print(report["when"])
    report["early_signals"] = {name: early_signals(t, max(args.versions)) for name, t in chosen_on.items()}
    signals = Table(title=f"separation on sample {args.choose_on}: 0.5 tells nothing apart, 1.0 everything")
    signals.add_column("list")
    signals.add_column("when")
    for measure in MEASURES:
        signals.add_column(measure, justify="right")
    for name, by_when in report["early_signals"].items():
        for when, figures in by_when.items():
            signals.add_row(name, when, *(f"{figures[m]:.2f}" if m in figures else "" for m in MEASURES))
    console.print(signals)
    cut, candidates = choose(chosen_on, max(args.versions))
    report["chosen"] = {"on_sample": args.choose_on, "rule": cut.name, "step": cut.step, "breaks": cut.breaks,
                        "candidates": candidates}
    for versions in args.versions:
        table = Table(title=f"{versions} versions: {cut.name} (chosen on sample {args.choose_on})")
        for column in ("list", "sample", "no cut: solved / version-steps", "with the cut", "wrong verified"):
            table.add_column(column, justify="right")
        figures = []
        for sample, traces in (("A", a), ("B", b)):
            for name, t in traces.items():
                plain, cutting = replay(t, versions, Cut(None, None)), replay(t, versions, cut)
                figures.append({"list": name, "sample": sample, "no_cut": plain, "cut": cutting})
                table.add_row(name, sample, f"{plain['solved']:.1%} / {plain['mean_version_steps']:.1f}",
                              f"{cutting['solved']:.1%} / {cutting['mean_version_steps']:.1f}",
                              str(cutting["wrong_verified"]))
        console.print(table)
        report[f"versions_{versions}"] = figures
    args.json.write_text(json.dumps(report, indent=2))
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
