"""TensorBoard events of a run (``train.tensorboard: true``): ``OUT/tensorboard/``, written by rank 0.

The writer is fed the records the engine logs anyway (``metrics.jsonl``, ``tid.jsonl``, the final
evaluation), at the moments it logs them, so it adds no host read of a device value.  Tags:

====================================  =========================================================
``train/loss``                        training loss, mean over the log window (with RBN's penalty)
``train/task_loss``                   the task loss alone (label-smoothed cross-entropy)
``train/penalty``                     ``loss - task_loss``: RBN's penalty (models that have one)
``train/lr``, ``train/tokens_per_s``  learning rate at the log step, throughput of the window
``train/epoch``                       the epoch the data position is in
``valid/<metric>``                    every ``eval_every`` evaluation (loss, accuracy, ppl, bleu, f1, ...)
``final/<split>/<stats>/<metric>``    the final evaluation (split valid/test; stats population/batch_stats)
``tid/<kind>/<module>``               online TID per batch-statistics norm and kind (``train.tid_every``)
====================================  =========================================================

Resume: the engine's logs are cut back to the checkpoint's step S; the writer opens with
``purge_step=S``, which makes TensorBoard hide every event of step S and later already on disk, and
writes the records of step S again from the repaired logs.  The events a resumed run leaves are
then those of an uninterrupted run (TensorBoard reads the files in order, the purge included).
"""

from __future__ import annotations

import importlib.util
import json
import math
import time
from pathlib import Path

from torch import nn

from normlab.norms.base import Norm

from .errors import ConfigError

FOLDER = "tensorboard"
INSTALL = "pip install 'normlab[tensorboard]'"
_NOT_SCALARS = {"step", "kind", "n_targets"}  # record fields that are not curves


def check_installed() -> None:
    """ConfigError unless the ``tensorboard`` package (which ``torch.utils.tensorboard`` needs) is there."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(f"train.tensorboard: true needs the tensorboard package, which is not installed: {INSTALL}")


def _scalars(values: dict, prefix: str) -> dict[str, float]:
    """The finite numbers of a (nested) metrics dict as ``prefix/key[/subkey]`` tags; strings (BLEU
    signatures), booleans, counts and non-finite values are left out."""
    out = {}
    for key, value in values.items():
        if key in _NOT_SCALARS:
            continue
        if isinstance(value, dict):
            out.update(_scalars(value, f"{prefix}/{key}"))
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[f"{prefix}/{key}"] = float(value)
    return out


def has_penalty(model: nn.Module) -> bool:
    """Whether a norm of ``model`` adds a penalty to the loss (RBN): its class overrides ``Norm.penalty``."""
    return any(isinstance(m, Norm) and type(m).penalty is not Norm.penalty for m in model.modules())


class TensorBoardLog:
    """The run's ``SummaryWriter`` in ``out/tensorboard``.  ``resume_step``: the checkpoint step a
    resumed run continues from (its logs already repaired to it); None for a run started afresh."""

    def __init__(self, out: Path, model: nn.Module, resume_step: int | None = None):
        check_installed()
        from torch.utils.tensorboard import SummaryWriter

        self.penalty = has_penalty(model)
        folder = out / FOLDER
        if resume_step is not None:
            _after_newest_event_file(folder)
        self.writer = SummaryWriter(log_dir=str(folder), purge_step=resume_step)
        if resume_step is not None:  # the events of step S were purged: write them again from the logs
            for name in ("metrics.jsonl", "tid.jsonl"):
                path = out / name
                lines = path.read_text().splitlines() if path.exists() else []
                self.log(name, [r for r in map(json.loads, lines) if r.get("step") == resume_step])

    def log(self, name: str, records: list[dict]) -> None:
        """Records as the engine appends them to ``name`` (metrics.jsonl or tid.jsonl)."""
        for r in records:
            if name == "tid.jsonl":
                self.writer.add_scalar(f"tid/{r['kind']}/{r['module']}", r["value"], r["step"])
                continue
            tags = _scalars(r, r["kind"])
            if "train/task_loss" in tags and "train/loss" in tags and self.penalty:
                tags["train/penalty"] = tags["train/loss"] - tags["train/task_loss"]
            for tag, value in tags.items():
                self.writer.add_scalar(tag, value, r["step"])

    def final(self, step: int, final: dict) -> None:
        """The final evaluation: ``final.json``'s valid and test metrics at the run's last step."""
        for split in ("valid", "test"):
            for tag, value in _scalars(final.get(split) or {}, f"final/{split}").items():
                self.writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _after_newest_event_file(folder: Path) -> None:
    """Wait, if need be, until the clock is past the second in the newest event file's name.

    TensorBoard reads a folder's event files in name order, and a name starts with the second it was
    opened (``events.out.tfevents.<seconds>.<host>.<pid>.<n>``): the resumed run's file, with its purge,
    must sort after the file whose events it purges (two within a second would sort by pid)."""
    seconds = [int(p.name.split(".")[3]) for p in folder.glob("events.out.tfevents.*")
               if len(p.name.split(".")) > 3 and p.name.split(".")[3].isdigit()]
    if seconds:
        wait = max(seconds) + 1 - time.time()
        if wait > 0:
            time.sleep(wait)
