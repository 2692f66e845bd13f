"""ARC end to end on the CPU, as a user runs it: build, train, export, answer by vote, submit.

    python benchmarks/arc_end_to_end.py [--work benchmarks/results/arc_end_to_end] [--max-tasks 16]

1. `trm-edge data arc` (ARC-AGI-1 training + evaluation, the first `--max-tasks` tasks of each,
   8 augmented versions) and `trm-edge train arc-tiny-cpu` (a few minutes on 2 cores);
2. `trm-edge export` of the trained checkpoint and `trm-edge solve-arc` on those evaluation
   tasks (Kaggle challenges + solutions), `--votes 1` and `--votes all`: pass@1, pass@2, a submission;
3. the same weights written as the official training script writes them (a `torch.save` state dict,
   `all_config.yaml`, `test/dataset.json` and `identifiers.json` in the official dataset layout),
   then `trm-edge convert --dataset` + export + solve: the submission must be the same.
Needs the offline ARC data (`../shared/data/arc-agi/trm-kaggle-combined`).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from harness import machine

from trm_edge.checkpoint import load_checkpoint
from trm_edge.convert import PREFIXES, RENAMES

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "arc-agi" / "trm-kaggle-combined"


def cli(*args: str) -> str:
    """`trm-edge ARGS` as a user types it; its output, echoed."""
    print("$ trm-edge " + " ".join(args), flush=True)
    proc = subprocess.run([sys.executable, "-m", "trm_edge", *args], capture_output=True, text=True)
    print(proc.stdout + proc.stderr, flush=True)
    if proc.returncode:
        raise SystemExit(f"trm-edge {args[0]} failed ({proc.returncode})")
    return proc.stdout


def write_official(checkpoint: Path, dataset: Path, out: Path) -> tuple[Path, Path, Path]:
    """The trained weights in the official training script's format and dataset layout."""
    model = load_checkpoint(checkpoint)
    c = model.config
    state = {}
    for name, tensor in model.state_dict().items():
        for ours, official in ((new, old) for old, new in RENAMES):
            name = name.replace(ours, official)
        state["".join(PREFIXES) + name] = tensor
    out.mkdir(parents=True, exist_ok=True)
    torch.save(state, out / "step_150")
    arch = {"name": "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1", "H_cycles": c.H_cycles,
            "L_cycles": c.L_cycles, "H_layers": 0, "L_layers": c.L_layers, "hidden_size": c.hidden_size,
            "num_heads": c.num_heads, "expansion": c.expansion, "pos_encodings": c.pos_encodings,
            "puzzle_emb_ndim": c.puzzle_emb_ndim, "puzzle_emb_len": c.puzzle_emb_len, "mlp_t": c.mlp_t,
            "halt_max_steps": c.halt_max_steps, "halt_exploration_prob": c.halt_exploration_prob,
            "forward_dtype": "float32", "no_ACT_continue": True}
    (out / "all_config.yaml").write_text(yaml.safe_dump({"arch": arch}))
    folder = out / "data"
    (folder / "test").mkdir(parents=True, exist_ok=True)
    info = json.loads((dataset / "dataset.json").read_text())
    (folder / "test" / "dataset.json").write_text(json.dumps({
        "seq_len": c.seq_len, "vocab_size": c.vocab_size, "pad_id": 0, "ignore_label_id": 0,
        "blank_identifier_id": 0, "num_puzzle_identifiers": c.num_puzzle_identifiers}))
    (folder / "identifiers.json").write_text(json.dumps(info["extra"]["puzzle_names"]))
    return out / "step_150", out / "all_config.yaml", folder / "test" / "dataset.json"


def evaluation_subset(dataset: Path, out: Path) -> tuple[Path, Path]:
    """The evaluation tasks the dataset trained on, as Kaggle challenges and solutions files."""
    info = json.loads((dataset / "dataset.json").read_text())
    names = [t.split("/", 1)[1] for t in info["extra"]["tasks"] if t.startswith("evaluation/")]
    for kind in ("challenges", "solutions"):
        doc = json.loads((DATA / f"arc-agi_evaluation_{kind}.json").read_text())
        (out / f"evaluation_{kind}.json").write_text(json.dumps({n: doc[n] for n in names}))
    return out / "evaluation_challenges.json", out / "evaluation_solutions.json"


def passes(text: str) -> dict[str, float]:
    found = re.search(r"pass@1 ([\d.]+)%, pass@2 ([\d.]+)%", text)
    rate = re.search(r"([\d.]+) versions/s", text)
    return {"pass@1": float(found.group(1)), "pass@2": float(found.group(2)),  # type: ignore[union-attr]
            "versions_per_s": float(rate.group(1))}  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("benchmarks/results/arc_end_to_end"))
    parser.add_argument("--max-tasks", type=int, default=16)
    parser.add_argument("--augment", type=int, default=8)
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    dataset, run = work / "data", work / "run"
    started = time.perf_counter()
    cli("data", "arc", "-o", str(dataset), "--source", str(DATA), "--subsets", "training,evaluation", "--test-set",
        "evaluation", "--augment", str(args.augment), "--max-tasks", str(args.max_tasks))
    cli("train", "arc-tiny-cpu", "--data", str(dataset), "-o", str(run), "--device", "cpu")
    trained = time.perf_counter()
    cli("export", str(run / "final.safetensors"), "-o", str(work / "export"), "--precision", "fp32")
    challenges, solutions = evaluation_subset(dataset, work)
    results = {"cpu": machine(), "train_s": trained - started}
    for votes in ("1", "all"):
        out = cli("solve-arc", str(work / "export"), str(challenges), "--solutions", str(solutions),
                  "--votes", votes, "-o", str(work / f"submission_votes_{votes}.json"))
        results[f"votes_{votes}"] = passes(out)

    pt, config, dataset_json = write_official(run / "final.safetensors", dataset, work / "official")
    cli("convert", str(pt), "--config", str(config), "--dataset", str(dataset_json),
        "-o", str(work / "official.safetensors"))
    cli("export", str(work / "official.safetensors"), "-o", str(work / "official_export"), "--precision", "fp32")
    out = cli("solve-arc", str(work / "official_export"), str(challenges), "--solutions", str(solutions),
              "-o", str(work / "submission_official.json"))
    results["official_format"] = passes(out)
    same = json.loads((work / "submission_official.json").read_text()) == json.loads(
        (work / "submission_votes_all.json").read_text())
    results["official_format_same_submission"] = same
    print(json.dumps(results, indent=2))
    (work / "results.json").write_text(json.dumps(results, indent=2))
    if not same:
        raise SystemExit("the official-format checkpoint answered differently from the one it was written from")


if __name__ == "__main__":
    main()
