"""A ``normlab train`` process that kills itself (SIGKILL) at one write boundary, for the fault tests.

    python fault_child.py POINT STEP train --config RUN.yaml --out DIR [...]

POINT is where, STEP the training step it applies at.  The engine is unchanged: this process wraps
the functions it writes through before calling the real ``normlab`` command, so the kill lands
exactly at the boundary named:

    between_checkpoint_writes  the first of the checkpoint's two files (step_N.pt, last.pt) written
    after_last_checkpoint      last.pt of STEP written (STEP = max_steps: after the final checkpoint)
    in_checkpoint_write        half of last.pt written into its temporary file
    mid_metrics_append         half of the metrics.jsonl line of STEP written
    in_final_evaluation        the test split's final evaluation begun
    pause_at_step              no kill: touch DIR/paused at STEP's log line, then sleep (a live writer)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: str, step: int, out: Path) -> None:
    from normlab.train import checkpoint as ckpt
    from normlab.train import engine

    save, append, evaluate_twice = ckpt.save, ckpt.append_jsonl, engine._Run._evaluate_twice

    def save_then_die(path, state):
        if point == "in_checkpoint_write" and path.name == "last.pt" and state["step"] == step:

            def half(f):
                f.write(b"\0" * 4096)
                f.flush()
                die()

            ckpt.atomic_write(path, half)
        save(path, state)
        if point == "between_checkpoint_writes" and state["step"] == step:
            die()
        if point == "after_last_checkpoint" and path.name == "last.pt" and state["step"] == step:
            die()

    def append_then_die(path, records):
        if records and records[0].get("step") == step and path.name == "metrics.jsonl":
            if point == "mid_metrics_append":
                line = json.dumps(records[0], sort_keys=True)
                with open(path, "a") as f:
                    f.write(line[: len(line) // 2])
                    f.flush()
                die()
            if point == "pause_at_step":
                append(path, records)
                (out / "paused").touch()
                time.sleep(600)
        append(path, records)

    def evaluate_then_die(self, split, decode):
        if point == "in_final_evaluation" and split == "test":
            die()
        return evaluate_twice(self, split, decode)

    ckpt.save, ckpt.append_jsonl, engine._Run._evaluate_twice = save_then_die, append_then_die, evaluate_then_die


if __name__ == "__main__":
    point, step, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    install(point, step, Path(args[args.index("--out") + 1]))
    from normlab.cli import main

    sys.exit(main(args))
