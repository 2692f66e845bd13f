"""`trm-edge info`: what a checkpoint or an export folder holds, as a table or as JSON.

An export is read from its metadata alone (no torch, no graph opened), so info works on a
runtime-only device; a checkpoint needs torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from trm_edge.app.cli_common import console
from trm_edge.shipped import checkpoint_path, shipped_names


def info_command(
    target: str = typer.Argument(
        ..., metavar="CHECKPOINT|EXPORT",
        help=f"A trm-edge .safetensors checkpoint, shipped:NAME ({shipped_names()}), or an export folder.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print it as JSON on stdout instead of a table."),
) -> None:
    """Show a checkpoint's architecture, sizes, parameter count and halting rule, or an export's
    task, model, precision, graph batch, files, engines and programs, halting and the choices
    `--backend auto` remembered in it."""
    path = checkpoint_path(target)
    if path.is_dir():
        summary = export_summary(path)
        if as_json:
            print(json.dumps(summary, indent=2))
        else:
            console.print(_export_table(summary))
        return
    _checkpoint_info(target, path, as_json)


def export_summary(export_dir: Path) -> dict[str, Any]:
    """What an export holds, from its trm_edge.json (and runtime_choices.json, where auto wrote one)."""
    from trm_edge.contract.export_dir import read_metadata

    meta = read_metadata(export_dir, allow_failed_validation=True)
    source = dict(meta.source)
    info = dict(source.pop("info", None) or {})
    if isinstance(info.get("puzzle_names"), list):  # one per puzzle id: a million for a full ARC model
        info["puzzle_names"] = f"{len(info['puzzle_names'])} names"
    validation = meta.validation or {}
    return {
        "export": str(export_dir),
        "task": {"name": meta.task, "options": meta.task_options},
        "model": meta.model.to_dict(),
        "precision": meta.precision,
        "int8_step": meta.int8,
        "batch": {"dynamic": meta.dynamic_batch, "size": meta.batch_size},
        "halting": meta.halting.to_dict(),
        "validation": {k: validation.get(k) for k in ("passed", "engine", "precision", "puzzles", "failed")
                       if k in validation},
        "files": meta.files,
        "solve": meta.solve,
        "engines": list(meta.engines),
        "programs": {name: {k: v for k, v in record.items() if k not in ("validation", "software")}
                     for name, record in meta.programs.items()},
        "source": source | ({"info": info} if info else {}),
        "software": meta.software,
        "remembered_choices": remembered_choices(export_dir),
    }


def remembered_choices(export_dir: Path) -> list[dict[str, Any]]:
    """The choices `--backend auto` stored in the export (runtime_choices.json): what was asked, on
    which CPU and width, and what it runs. An entry holds for as long as its key (CPU, libraries,
    code, files) still matches; doctor --export DIR --measure measures again."""
    from trm_edge.runtime.backends.choice_cache import CACHE_FILE, CACHE_FORMAT

    try:
        doc = json.loads((export_dir / CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    entries = doc.get("entries") if isinstance(doc, dict) and doc.get("format") == CACHE_FORMAT else None
    shown = []
    for entry in (entries or {}).values():
        key, choice = (entry.get("key"), entry.get("choice")) if isinstance(entry, dict) else (None, None)
        if not isinstance(key, dict) or not isinstance(choice, dict):
            continue
        # The cache keys the width auto timed at ("width", at most choice.TIMED_WIDTH), not the slots.
        asked = {("timed width" if k == "width" else k): key[k] for k in ("backend", "precision", "width",
                                                                           "threads") if k in key}
        shown.append({"cpu": key.get("cpu"), "asked": asked, "backend": choice.get("backend"),
                      "precision": choice.get("precision"), "why": choice.get("why"),
                      "step_ms": choice.get("step_ms", {})})
    return shown


def _export_table(s: dict[str, Any]) -> Table:
    model, halting, batch = s["model"], s["halting"], s["batch"]
    config = model.get("config") or {}
    cycles = (f", H {config['H_cycles']} x (L {config['L_cycles']} + 1) cycles per step"
              if config.get("H_cycles") else "")
    ids = model["num_puzzle_identifiers"] if model["uses_puzzle_identifiers"] else "no"
    rows = [
        ("task", s["task"]["name"] + "".join(f", {k} {v}" for k, v in s["task"]["options"].items())),
        ("model", f"{model['arch'].upper()}, {model['seq_len']} tokens, vocabulary {model['vocab_size']}, hidden "
                  f"{model['hidden_size']}{cycles}, {ids} puzzle ids"),
        ("precision", s["precision"] + (f" graphs; int8 step {s['int8_step'].get('file')}" if s["int8_step"] else "")),
        ("graph batch", "dynamic: any number of slots" if batch["dynamic"]
         else f"fixed {batch['size']}: the only number of slots it runs"),
        ("halting", f"the model's rule {halting['rule']}, at most {halting['max_steps']} steps"
         + (f"; calibrated default {halting['policy']}" if halting.get("policy") else "")),
    ]
    if s["validation"]:
        passed = "passed" if s["validation"].get("passed") else "FAILED"
        rows.append(("validation", f"{passed} against PyTorch on {s['validation'].get('engine')}"))
    rows.append(("files", ", ".join(f"{name} ({_size(rec.get('bytes', 0))})" for name, rec in s["files"].items())
                 or "not recorded (an export from before file records)"))
    if s["solve"]:
        rows.append(("solve graph", f"{s['solve'].get('file')} (halting {s['solve'].get('halting')})"))
    for engine in s["engines"]:
        profile = engine.get("profile") or {}
        rows.append(("engine", f"{engine.get('file')}: TensorRT {engine.get('tensorrt')} for {engine.get('gpu')}, "
                               f"{engine.get('precision')}, batch {profile.get('min')}-{profile.get('max')}"))
    for name, record in s["programs"].items():
        rest = ", ".join(f"{k} {v}" for k, v in record.items() if k not in ("init", "step"))
        files = f"{record.get('init')}, {record.get('step')}"
        rows.append((f"{name} programs", files + (f" ({rest})" if rest else "")))
    source = s["source"]
    if source:
        rows.append(("source", f"{source.get('checkpoint')} (sha256 {str(source.get('sha256'))[:12]})"))
        if (source.get("info") or {}).get("command"):
            rows.append(("trained with", str(source["info"]["command"])))
    if s["software"]:
        rows.append(("written by", ", ".join(f"{k} {v}" for k, v in s["software"].items())))
    for choice in s["remembered_choices"]:
        asked = ", ".join(f"{k} {v}" for k, v in choice["asked"].items() if v is not None)
        rows.append(("auto remembered", f"{choice['backend']} {choice['precision']} on {choice['cpu']} ({asked}): "
                                        f"{choice['why']}"))
    table = Table(title=s["export"], show_header=False)
    for key, value in rows:
        table.add_row(key, escape(value))
    return table


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count / 1e3:.1f} kB"


def _checkpoint_info(target: str, path: Path, as_json: bool) -> None:
    from trm_edge.checkpoint import load_checkpoint

    model = load_checkpoint(path)
    c = model.config
    provenance = model.info
    if as_json:
        print(json.dumps({"config": c.to_dict(), "parameters": model.num_parameters(), "info": provenance}, indent=2))
        return
    mixer = "MLP over tokens (mlp_t)" if c.mlp_t else f"self-attention, {c.num_heads} heads"
    nets = f"L net {c.L_layers} layers" + (f", H net {c.H_layers} layers" if c.arch == "hrm" else " (shared)")
    rule = {"q_halt>0": "halt when q_halt > 0", "q_halt>q_continue": "halt when q_halt > q_continue"}
    table = Table(title=target, show_header=False)
    rows = [
        ("architecture", f"{c.arch.upper()}, {nets}"),
        ("token mixing", mixer),
        ("positions", c.pos_encodings),
        ("hidden size", f"{c.hidden_size} (MLP expansion {c.expansion:g})"),
        ("cycles per step", f"H {c.H_cycles} x (L {c.L_cycles} + 1)"),
        ("puzzle", f"{c.seq_len} tokens, vocabulary {c.vocab_size}, task {c.task}"),
        ("puzzle embedding", f"{c.num_puzzle_identifiers} ids x {c.puzzle_emb_ndim} in {c.puzzle_emb_len} prefix "
                             "tokens" if c.puzzle_emb_ndim else "none"),
        ("halting", f"{rule[c.halt_rule]}, at most {c.halt_max_steps} steps"),
        ("parameters", f"{model.num_parameters():,}"),
        ("stored dtype", str(model.compute_dtype).removeprefix("torch.")),
    ]
    if provenance.get("source"):
        rows.append(("source", json.dumps(provenance["source"])))
    if provenance.get("command"):
        recipe = provenance.get("recipe", {}).get("name", "?")
        rows.append(("trained with", f"{provenance['command']} (recipe {recipe}, step {provenance.get('step')})"))
    if provenance.get("puzzle_id_map"):
        rows.append(("puzzle ids", f"sliced from {provenance.get('sliced_from')}: new id i = old id puzzle_id_map[i] "
                                   "(see --json)"))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
