"""Atomic files, checkpoints, and checkpoint averaging."""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import numpy as np
import torch

from normlab.atomic import as_write_error, atomic_write

from .errors import RunStateError

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
    """Append records, one JSON line each (a kill mid-write leaves a torn last line: truncate_jsonl)."""
    if records:
        try:
            with open(path, "a") as f:
                f.writelines(json.dumps(json_safe(r), sort_keys=True) + "\n" for r in records)
        except OSError as err:
            raise as_write_error(err, path) from err


def truncate_jsonl(path: Path, last_step: int, fix: str) -> None:
    """Keep only the records with step <= last_step (what a resumed run has not redone), rewritten
    atomically.  A torn last line (a kill in mid-append) is dropped with a warning; a line elsewhere
    that is not JSON raises RunStateError (``fix``: how to start afresh)."""
    if not path.exists():
        return
    lines = path.read_bytes().split(b"\n")
    kept = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if any(rest.strip() for rest in lines[number:]):
                raise RunStateError(f"{path} line {number} is not a JSON record: the file is damaged; {fix}") from None
            print(f"normlab train: warning: dropped the torn last line of {path} (a write cut short by a kill); "
                  "the resumed run writes it again", file=sys.stderr)
            continue
        if record.get("step", 0) <= last_step:
            kept.append(line)
    atomic_write(path, lambda f: f.write(b"".join(line + b"\n" for line in kept)))


def save(path: Path, state: dict) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def load(path: Path, device: torch.device | str = "cpu", fix: str = "") -> dict:
    """A checkpoint; one that does not load (truncated, overwritten, not a checkpoint) raises
    RunStateError naming the file (``fix``: what to do about it)."""
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch reports damage as UnpicklingError, RuntimeError, EOFError, OSError, ...
        what = str(err).strip().splitlines()[0][:160] if str(err).strip() else "no detail"
        raise RunStateError(
            f"{path} is damaged and cannot be loaded ({type(err).__name__}: {what})" + (f"; {fix}" if fix else "")
        ) from None


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


def step_of(path: Path) -> int:
    """The step of a step checkpoint ``step_XXXXXXXX.pt``."""
    return int(path.stem.split("_", 1)[1])


def step_checkpoints(folder: Path, up_to: int | None = None) -> list[Path]:
    """The model-only step checkpoints in ``folder`` (of steps <= ``up_to``, if given), oldest first."""
    paths = sorted(folder.glob("step_*.pt"), key=step_of)
    return paths if up_to is None else [p for p in paths if step_of(p) <= up_to]


def prune_step_checkpoints(folder: Path, keep: int) -> None:
    for old in step_checkpoints(folder)[:-keep]:
        old.unlink()


def average_state_dicts(paths: list[Path], fix: str = "") -> dict:
    """Element-wise mean of floating-point entries; other entries (counters) from the newest file."""
    states = [load(p, fix=fix)["model"] for p in paths]
    newest = states[-1]
    averaged = {}
    for key, value in newest.items():
        if value.is_floating_point():
            averaged[key] = torch.stack([s[key].double() for s in states]).mean(0).to(value.dtype)
        else:
            averaged[key] = value
    return averaged
