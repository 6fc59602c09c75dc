"""``normlab train --config RUN.yaml --out DIR [--resume]``: one training run.

Errors that are the user's to fix (a bad config or data option, a locked or damaged run folder, a
full disk, an unwritable ``--out``) print one line, ``normlab train: <message>``, and exit 2.
"""

from __future__ import annotations

import argparse
import sys

EXIT_DIVERGED = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="run config (YAML); see docs/models_training.md")
    parser.add_argument("--out", required=True, help="output folder (must be new or empty unless --resume)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    parser.add_argument(
        "--restart-if-changed",
        action="store_true",
        help="with --resume: if --out holds a run of a different config (finished or not), or one whose "
        "last checkpoint does not load, clear it and start afresh (the workflow uses this; without it such "
        "a folder is refused)",
    )
    parser.add_argument(
        "--fail-on-divergence",
        action="store_true",
        help=f"exit {EXIT_DIVERGED} when the run diverges (default: exit 0; final.json says 'diverged')",
    )


def run(args: argparse.Namespace) -> int:
    from .engine import train
    from .watchdog import exit_with_snakemake

    exit_with_snakemake()  # under Snakemake: stop when it dies, rather than train on as an orphan
    # The user's errors (normlab.train.errors, DataError, WriteError) end in normlab.cli's handler:
    # one line, exit 2.
    final = train(args.config, args.out, resume=args.resume, restart_if_changed=args.restart_if_changed)
    print(
        f"normlab train: {final['status']} after {final['steps']} steps -> {args.out}/final.json",
        file=sys.stderr,
    )
    if final["status"] == "diverged" and args.fail_on_divergence:
        return EXIT_DIVERGED
    return 0
