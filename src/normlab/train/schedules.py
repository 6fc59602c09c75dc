"""Learning-rate schedules as pure functions of the update number (so resuming needs only the step)."""

from __future__ import annotations

import math
from collections.abc import Callable


def _inverse_sqrt(step: int, optim: dict, max_steps: int) -> float:
    return optim["lr"] * math.sqrt(max(optim["warmup_steps"], 1) / step)


def _cosine(step: int, optim: dict, max_steps: int) -> float:
    lr, warmup, floor = optim["lr"], optim["warmup_steps"], optim["min_lr"]
    progress = min((step - warmup) / max(max_steps - warmup, 1), 1.0)
    return floor + 0.5 * (lr - floor) * (1 + math.cos(math.pi * progress))


def _constant(step: int, optim: dict, max_steps: int) -> float:
    return optim["lr"]


# optim.schedule: the LR after the warm-up, from (step, optim section, max_steps)
SCHEDULES: dict[str, Callable[[int, dict, int], float]] = {
    "inverse_sqrt": _inverse_sqrt,  # fairseq: lr · sqrt(warmup / step)
    "cosine": _cosine,  # lr → min_lr over the remaining steps
    "constant": _constant,
}


def learning_rate(step: int, optim: dict, max_steps: int) -> float:
    """LR of update ``step`` (1-based): linear warm-up from ``warmup_init_lr``, then the schedule
    (``SCHEDULES``).  Never below ``min_lr``."""
    lr, warmup, init = optim["lr"], optim["warmup_steps"], optim["warmup_init_lr"]
    if warmup and step <= warmup:
        return init + (lr - init) * step / warmup
    return max(SCHEDULES[optim["schedule"]](step, optim, max_steps), optim["min_lr"])
