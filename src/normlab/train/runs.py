"""A finished run, read back for post-hoc tools (the TID probe): :func:`load_run`.

It rebuilds exactly what the run trained on -- the validated config of its ``config.yaml``, its data,
its model with the weights of ``checkpoints/last.pt`` (the last training step, before checkpoint
averaging), its fixed training batches and their first-epoch order -- through the same functions
the engine uses, so a tool never needs the engine's internals.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import checkpoint as ckpt
from . import config as config_mod
from .batching import EpochStream
from .engine import build_run_model, train_batches
from .examples import Batch, TaskData
from .families import Family, get_family
from .runtime import autocast_for, keep_freed_memory, pick_device
from .tasks import load_task


@dataclass
class LoadedRun:
    """What :func:`load_run` returns."""

    run_dir: Path
    cfg: dict  # the validated run config (with data.options.cache replaced where ``cache`` was given)
    final: dict  # final.json
    task: TaskData
    family: Family
    model: nn.Module  # weights of checkpoints/last.pt, on ``device``, in training mode (as built)
    device: torch.device
    autocast: Callable[[], AbstractContextManager]  # the run's autocast: ``with run.autocast(): ...``
    batches: list[np.ndarray]  # the run's fixed training index batches

    def first_epoch(self) -> Iterator[Batch]:
        """The training batches of the run's first epoch, in the order the run drew them, on ``device``.

        What a batch draws from torch's global CPU generator (an augmented image batch's crops and flips)
        comes from a generator of its own, seeded from the run's seed, so the batches are the same on every
        call and the caller's generator (its dropout masks) is left as it was."""
        stream = EpochStream(self.task, self.batches, self.cfg["seed"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg["seed"])
            state = torch.get_rng_state()
        for _ in range(len(self.batches)):
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(state)
                batch = next(stream)
                state = torch.get_rng_state()
            yield batch.to(self.device)

    def forward(self, batch: Batch) -> torch.Tensor:
        """The model's logits on a batch (on ``device``), under the run's autocast; gradients as the
        caller's mode (wrap in ``torch.no_grad()`` for inference)."""
        with self.autocast():
            return self.family.forward(self.model, batch)


def load_run(
    run_dir: str | Path, *, cache: str | Path | None = None, device: str = "auto", threads: int | None = None
) -> LoadedRun:
    """Load the run written by ``normlab train`` into ``run_dir`` (config.yaml, final.json and
    checkpoints/last.pt must exist).

    ``cache``: the data cache of a ``normlab`` data source (default: the run config's); ``device``:
    ``auto``, ``cpu`` or ``cuda``; ``threads``: ``torch.set_num_threads`` (default: the run config's
    ``train.threads``, if any).  Raises FileNotFoundError naming a missing file, ConfigError for a
    config.yaml that does not validate.
    """
    run_dir = Path(run_dir)
    for name in ("config.yaml", "final.json", "checkpoints/last.pt"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(
                f"{run_dir} is not a finished run: it has no {name} (final.json is written last; finish the run "
                f"with `normlab train --config ... --out {run_dir} --resume`)"
            )
    cfg = config_mod.load(run_dir / "config.yaml", to_train=False)  # read back: tensorboard not needed
    final = json.loads((run_dir / "final.json").read_text())
    if cache is not None and cfg["data"]["source"] == "normlab":
        cfg["data"]["options"] = {**cfg["data"].get("options", {}), "cache": str(cache)}
    if threads or cfg["train"]["threads"]:
        torch.set_num_threads(threads or cfg["train"]["threads"])
    dev = pick_device(device, 0)
    if dev.type == "cpu":
        keep_freed_memory()  # the probe's forwards allocate as training does
    task = load_task(cfg["task"], cfg["data"], cfg["seed"])
    task = get_family(task.family).for_run(task, cfg)  # as the engine does
    model = build_run_model(cfg, task)
    model.load_state_dict(ckpt.load(run_dir / "checkpoints" / "last.pt", "cpu")["model"])
    model.to(dev)
    return LoadedRun(
        run_dir=run_dir,
        cfg=cfg,
        final=final,
        task=task,
        family=get_family(task.family),
        model=model,
        device=dev,
        autocast=autocast_for(dev, cfg["train"]["precision"]),
        batches=train_batches(cfg, task),
    )
