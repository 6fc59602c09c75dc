"""Where and how a run executes: the device, the autocast precision, the progress display.

The choices here are the run config's ``train.device``, ``train.precision`` and ``train.progress``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os

import torch

from .errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "bf16", "fp32")
PROGRESS = ("auto", "on", "off")  # auto: a tqdm bar on a terminal, one line per log interval otherwise


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_KEEP_BYTES = 256 << 20  # keep up to 256 MB of freed heap; the largest mmap threshold glibc accepts is 32 MB


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse instead of returning it to the kernel.

    A CPU training step frees and re-allocates its activations every step; by default glibc hands
    large blocks back (munmap / trim) and the next step faults fresh zeroed pages in again — ~7,000
    minor page faults per step of the default POS model, and 0.68–0.78x the training time without
    (docs/default_sizing.md).  A no-op off glibc or when NORMLAB_KEEP_FREED_MEMORY=0; returns whether
    it applied.  Memory use grows by at most the kept 256 MB."""
    if os.environ.get("NORMLAB_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt)
        return False
    return all(
        mallopt(param, value) == 1
        for param, value in ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, _KEEP_BYTES), (_M_TOP_PAD, 64 << 20))
    )


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

