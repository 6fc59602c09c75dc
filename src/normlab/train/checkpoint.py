"""Atomic files, checkpoints, and checkpoint averaging."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import torch

from normlab.atomic import atomic_write  # noqa: F401 (re-exported: the engine writes through it)

STEP_CHECKPOINT = "step_{:08d}.pt"


def json_safe(value):
    """NaN/inf become None (JSON has no such numbers); containers are converted recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_json(path: Path, obj) -> None:
    atomic_write(
        path, lambda f: f.write((json.dumps(json_safe(obj), indent=2, sort_keys=True) + "\n").encode())
    )


def append_jsonl(path: Path, records: list[dict]) -> None:
    if records:
        with open(path, "a") as f:
            f.writelines(json.dumps(json_safe(r), sort_keys=True) + "\n" for r in records)


def truncate_jsonl(path: Path, last_step: int) -> None:
    """Keep only the records with step <= last_step (what a resumed run has not redone)."""
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line and json.loads(line).get("step", 0) <= last_step
    ]
    atomic_write(path, lambda f: f.write("".join(line + "\n" for line in kept).encode()))


def save(path: Path, state: dict) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def load(path: Path, device: torch.device | str = "cpu") -> dict:
    return torch.load(path, map_location=device, weights_only=False)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def step_checkpoints(folder: Path) -> list[Path]:
    """The model-only step checkpoints in ``folder``, oldest first."""
    return sorted(folder.glob("step_*.pt"))


def prune_step_checkpoints(folder: Path, keep: int) -> None:
    for old in step_checkpoints(folder)[:-keep]:
        old.unlink()


def average_state_dicts(paths: list[Path]) -> dict:
    """Element-wise mean of floating-point entries; other entries (counters) from the newest file."""
    states = [load(p)["model"] for p in paths]
    newest = states[-1]
    averaged = {}
    for key, value in newest.items():
        if value.is_floating_point():
            averaged[key] = torch.stack([s[key].double() for s in states]).mean(0).to(value.dtype)
        else:
            averaged[key] = value
    return averaged
