"""The fused CPU kernel of masked BatchNorm: ``masked_bn.c``, built on first use, called through ctypes.

Eager PyTorch runs masked BN as ~13 passes over memory and ~40 small per-channel ops; the C file does
the same arithmetic in 4 passes (two forward, two backward), like PyTorch's own fused BatchNorm, with
the per-channel arithmetic between them, so a training forward or backward is two calls.  It is compiled with
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
    p, i64, f64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int
    for suffix in ("f32", "f64"):
        for name, args in (
            ("stats", [p, p, i64, i64, p]),
            ("normalize", [p, p, p, p, f64, i32, i64, i64, p, p]),
            ("grad_stats", [p, p, p, p, p, p, f64, f64, i32, i64, i64, p, p, p]),
            ("grad_input", [p, p, p, p, p, i64, i64, p]),
        ):
            fn = getattr(lib, f"{name}_{suffix}")
            fn.argtypes, fn.restype = args, ctypes.c_int
    return lib


def available() -> tuple[bool, str]:
    """(True, "") when the kernel is built and loaded, else (False, why)."""
    lib = _library()
    return (False, str(lib)) if isinstance(lib, FusedKernelUnavailable) else (True, "")


def takes(x: torch.Tensor) -> bool:
    """Whether the kernel is written for this tensor (CPU, float32/64), built or not."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def _call(name: str, x: torch.Tensor, *args) -> None:
    lib = _library()
    if isinstance(lib, FusedKernelUnavailable):
        raise lib
    if getattr(lib, f"{name}_{'f32' if x.dtype == torch.float32 else 'f64'}")(*args) != 0:
        raise MemoryError(f"masked_bn.c {name}: out of memory for its work buffers")


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _vector(x: torch.Tensor, v: torch.Tensor | None) -> torch.Tensor | None:
    # the caller keeps the result alive: a temporary freed before the C call would leave a dangling pointer
    return None if v is None else v.detach().to(x.dtype).contiguous()


# x, dy: contiguous (tokens, channels) float32/64; pad: contiguous bool (tokens,), True at padding, or None.


def stats(x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
    """[Σ keep·x, Σ keep·x², Σ keep] over the tokens (keep = not pad): 2·channels + 1 float64 values."""
    n, c = x.shape
    sums = torch.empty(2 * c + 1, dtype=torch.float64)
    _call("stats", x, _ptr(x), _ptr(pad), n, c, _ptr(sums))
    return sums


def normalize(x, sums, weight, bias, eps: float, clamp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """y = x·scale + shift from `stats`' sums, and the per-channel rows (mean, var, inv, scale) in x's dtype."""
    n, c = x.shape
    y, chan = torch.empty_like(x), torch.empty(4, c, dtype=x.dtype)
    w, b = _vector(x, weight), _vector(x, bias)
    _call("normalize", x, _ptr(x), _ptr(sums), _ptr(w), _ptr(b), eps, int(clamp), n, c, _ptr(y), _ptr(chan))
    return y, chan


def grad_stats(dy, x, chan, weight, d_mean, d_var, count: float, eps: float, clamp: bool, bias: bool):
    """(∂weight, ∂bias, d_sums): d_sums = [∂L/∂S₁, 2·∂L/∂S₂] (float64) for `grad_input`.

    dy None: no gradient reaches y (only the statistics); d_mean, d_var None: none reaches them.
    """
    n, c = x.shape
    d_weight = None if weight is None else torch.empty(c, dtype=x.dtype)
    d_bias = torch.empty(c, dtype=x.dtype) if bias else None
    d_sums = torch.empty(2 * c, dtype=torch.float64)
    w, dm, dv = _vector(x, weight), _vector(x, d_mean), _vector(x, d_var)
    _call(
        "grad_stats", x, _ptr(dy), _ptr(x), _ptr(chan), _ptr(w), _ptr(dm), _ptr(dv), count, eps, int(clamp),
        n, c, _ptr(d_weight), _ptr(d_bias), _ptr(d_sums),
    )
    return d_weight, d_bias, d_sums


def grad_input(dy, x, pad, chan, d_sums) -> torch.Tensor:
    """dx = dy·scale + keep·(∂L/∂S₁ + x·2·∂L/∂S₂), as a new tensor (dy None: no dy term)."""
    n, c = x.shape
    dx = torch.empty_like(x)
    _call("grad_input", x, _ptr(dy), _ptr(x), _ptr(pad), _ptr(chan), _ptr(d_sums), n, c, _ptr(dx))
    return dx
