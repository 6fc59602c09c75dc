"""Learning-rate schedules as pure functions of the update number (so resuming needs only the step)."""

from __future__ import annotations

import math


def learning_rate(step: int, optim: dict, max_steps: int) -> float:
    """LR of update ``step`` (1-based): linear warm-up from ``warmup_init_lr``, then the schedule.

    inverse_sqrt (fairseq): lr · sqrt(warmup / step);  cosine: lr → min_lr over the remaining steps;
    constant: lr.  Never below ``min_lr``.
    """
    lr, warmup, init = optim["lr"], optim["warmup_steps"], optim["warmup_init_lr"]
    if warmup and step <= warmup:
        return init + (lr - init) * step / warmup
    schedule = optim["schedule"]
    if schedule == "inverse_sqrt":
        value = lr * math.sqrt(max(warmup, 1) / step)
    elif schedule == "cosine":
        progress = min((step - warmup) / max(max_steps - warmup, 1), 1.0)
        value = optim["min_lr"] + 0.5 * (lr - optim["min_lr"]) * (1 + math.cos(math.pi * progress))
    else:
        value = lr
    return max(value, optim["min_lr"])
