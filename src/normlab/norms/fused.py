"""The fused CPU kernel of masked BatchNorm: ``masked_bn.c``, built on first use, called through ctypes.

Eager PyTorch runs masked BN as ~13 passes over memory (one per op); the C file does the same
arithmetic in 4 (two forward, two backward), like PyTorch's own fused BatchNorm.  It is compiled with
the system C compiler (``$CC``, else ``cc``/``gcc``/``clang``) into a per-user cache
(``$NORMLAB_KERNEL_CACHE``, default ``~/.cache/normlab/kernels``), named by a hash of the source and
the compiler, so a changed source or compiler builds afresh; the write is atomic, so processes that
build at once do not clash.  ``available()`` says whether it could be built here and, if not, why.
It covers contiguous float32/float64 tensors on the CPU; everything else uses the eager ops.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("masked_bn.c")
COMPILERS = ("cc", "gcc", "clang")
# -O3 vectorises the channel loops; no -march=native: the cache may be shared by nodes with other CPUs
FLAGS = ("-O3", "-fopenmp", "-shared", "-fPIC", "-std=c11")


class FusedKernelUnavailable(RuntimeError):
    """The C kernel cannot be built or loaded here (no compiler, no OpenMP, a failed build)."""


def _compiler() -> str:
    for name in (os.environ.get("CC"), *COMPILERS):
        if name and shutil.which(name):
            return shutil.which(name)
    raise FusedKernelUnavailable(f"no C compiler found (tried $CC, {', '.join(COMPILERS)})")


def cache_dir() -> Path:
    return Path(os.environ.get("NORMLAB_KERNEL_CACHE") or Path.home() / ".cache" / "normlab" / "kernels")


def _build() -> Path:
    cc = _compiler()
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    except OSError as exc:
        raise FusedKernelUnavailable(f"the C compiler {cc} does not run: {exc}") from exc
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + version.encode() + " ".join(FLAGS).encode()).hexdigest()[:16]
    target = cache_dir() / f"masked_bn-{digest}.so"
    if target.exists():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            out = Path(tmp) / target.name
            r = subprocess.run([cc, *FLAGS, "-o", str(out), str(SOURCE)], capture_output=True, text=True)
            if r.returncode != 0:
                raise FusedKernelUnavailable(f"`{cc} {' '.join(FLAGS)}` failed:\n{r.stderr[-2000:]}")
            os.replace(out, target)  # atomic: a concurrent build of the same source writes the same file
    except OSError as exc:
        raise FusedKernelUnavailable(
            f"cannot build into {target.parent} ({exc}); set NORMLAB_KERNEL_CACHE to a writable folder"
        ) from exc
    return target


@functools.cache
def _library() -> ctypes.CDLL | FusedKernelUnavailable:
    try:
        lib = ctypes.CDLL(str(_build()))
    except FusedKernelUnavailable as exc:
        return exc
    except OSError as exc:  # a library that does not load (e.g. no libgomp)
        return FusedKernelUnavailable(f"the built kernel does not load: {exc}")
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    for suffix in ("f32", "f64"):
        for name, args in (
            ("stats", [p, p, i64, i64, p, p]),
            ("affine", [p, p, p, i64, i64, p]),
            ("grad_sums", [p, p, i64, i64, p, p]),
            ("grad_input", [p, p, p, p, p, p, i64, i64, p]),
        ):
            fn = getattr(lib, f"{name}_{suffix}")
            fn.argtypes = args
            fn.restype = ctypes.c_int if name in ("stats", "grad_sums") else None
    return lib


def available() -> tuple[bool, str]:
    """(True, "") when the kernel is built and loaded, else (False, why)."""
    lib = _library()
    return (False, str(lib)) if isinstance(lib, FusedKernelUnavailable) else (True, "")


def takes(x: torch.Tensor) -> bool:
    """Whether the kernel is written for this tensor (CPU, float32/64), built or not."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def _fn(name: str, x: torch.Tensor):
    lib = _library()
    if isinstance(lib, FusedKernelUnavailable):
        raise lib
    return getattr(lib, f"{name}_{'f32' if x.dtype == torch.float32 else 'f64'}")


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _two_sums(name: str, a: torch.Tensor, b: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One of the C reductions over the rows of the (tokens, channels) `a`: two channel sums, in a's dtype."""
    n, c = a.shape
    s1 = torch.empty(c, dtype=torch.float64)
    s2 = torch.empty(c, dtype=torch.float64)
    if _fn(name, a)(_ptr(a), _ptr(b), n, c, _ptr(s1), _ptr(s2)) != 0:
        raise MemoryError(f"masked_bn.c {name}: out of memory for the per-thread sums")
    return s1.to(a.dtype), s2.to(a.dtype)


def stats(x: torch.Tensor, keep: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ keep·x, Σ keep·x²) per channel of a contiguous (tokens, channels) x; keep None = all tokens."""
    return _two_sums("stats", x, keep)


def _vectors(x: torch.Tensor, *vs: torch.Tensor) -> list[torch.Tensor]:
    # kept in a list by the caller: a temporary freed before the C call would leave a dangling pointer
    return [v.detach().to(x.dtype).contiguous() for v in vs]


def affine(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """x·scale + shift, as a new tensor."""
    y = torch.empty_like(x)
    vecs = _vectors(x, scale, shift)
    _fn("affine", x)(_ptr(x), *map(_ptr, vecs), x.shape[0], x.shape[1], _ptr(y))
    return y


def grad_sums(dy: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ dy·x, Σ dy) per channel, over every token."""
    return _two_sums("grad_sums", dy, x)


def grad_input(dy, x, keep, scale, a, b) -> torch.Tensor:
    """dy·scale + keep·(a + x·b), as a new tensor."""
    dx = torch.empty_like(x)
    vecs = _vectors(x, scale, a, b)
    _fn("grad_input", x)(_ptr(dy), _ptr(x), _ptr(keep), *map(_ptr, vecs), x.shape[0], x.shape[1], _ptr(dx))
    return dx
