"""Where and how a run executes: the device, the autocast precision, the progress display.

The choices here are the run config's ``train.device``, ``train.precision`` and ``train.progress``.
"""

from __future__ import annotations

import contextlib

import torch

from .errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "bf16", "fp32")
PROGRESS = ("auto", "on", "off")  # auto: a tqdm bar on a terminal, one line per log interval otherwise


def device_kind(name: str) -> str:
    """"cuda" or "cpu": what ``train.device`` ``name`` runs on here."""
    return "cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu"


def pick_device(name: str, local_rank: int) -> torch.device:
    if name not in DEVICES:
        raise ConfigError(f"device {name!r} is not valid; valid values: {', '.join(DEVICES)}")
    if device_kind(name) == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"train.device is 'cuda' but this machine has no usable CUDA device (torch {torch.__version__}, "
                f"{'a CPU-only build' if torch.version.cuda is None else 'CUDA ' + torch.version.cuda}); "
                "set train.device: auto or cpu, or run where a GPU is"
            )
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def autocast_for(device: torch.device, precision: str):
    """bf16 autocast on GPU ('auto' or 'bf16'); float32 elsewhere.  Norm statistics stay float32."""
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    if precision == "bf16":
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext

