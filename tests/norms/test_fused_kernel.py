"""The fused C kernel of bn/rbn (normlab.norms.fused): the eager path's results, its build, its fallbacks."""

from __future__ import annotations

import stat
import warnings

import pytest
import torch

from normlab.norms import batch, build_norm, fused

from .helpers import random_padding

OK, WHY = fused.available()
# no compiler at all is a reason to skip; a compiler whose build fails is a failure
needs_kernel = pytest.mark.skipif(not OK and WHY.startswith("no C compiler"), reason=WHY)


def _train_step(name, kernel, x, pad, dtype, loss_of="output", **options):
    """One training forward/backward; the loss is the output's, the penalty's (rbn), or both."""
    torch.manual_seed(1)
    opts = {"penalty_mean": 0.3, "penalty_var": 0.05} if name == "rbn" else {}
    norm = build_norm(name, x.shape[-1], kernel=kernel, **opts, **options).to(dtype)
    if norm.weight is not None:
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5), norm.bias.normal_()
    inp = x.clone().requires_grad_()
    y = norm(inp, pad)
    upstream = torch.randn(y.shape, dtype=dtype, generator=torch.Generator().manual_seed(2))
    loss = (y * upstream).sum() if loss_of != "penalty" else 0
    if name == "rbn" and loss_of != "output":
        loss = loss + norm.penalty()
    loss.backward()
    grads = {} if norm.weight is None else {"dw": norm.weight.grad, "db": norm.bias.grad}
    return {
        "y": y.detach(), "dx": inp.grad, **grads, "running_mean": norm.running_mean,
        "running_var": norm.running_var, "batch_count": norm.batch_count,
        "penalty": norm.penalty().detach() if name == "rbn" else torch.zeros(()),
    }


@needs_kernel
@pytest.mark.parametrize("name", ["bn", "rbn"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("padded", [False, True])
def test_fused_equals_eager(name, dtype, padded):
    assert OK, WHY
    x = (torch.randn(7, 13, 24) * 2 + 0.5).to(dtype)
    pad = random_padding(7, 13) if padded else None
    if padded:
        x[pad] = 50.0  # garbage at padding: weighted by 0 in both kernels
    loss_of = "both" if name == "rbn" else "output"
    fused_out = _train_step(name, "fused", x, pad, dtype, loss_of)
    eager_out = _train_step(name, "eager", x, pad, dtype, loss_of)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    for key in fused_out:
        torch.testing.assert_close(fused_out[key], eager_out[key], **tol, msg=f"{key} differs")


@needs_kernel
@pytest.mark.parametrize(
    ("name", "loss_of", "options"),
    [
        ("bn", "output", {"affine": False}),
        ("bn", "output", {"eps_mode": "add", "running_var": "unbiased"}),
        ("rbn", "penalty", {}),  # no gradient reaches the output: only the statistics get one
        ("rbn", "both", {"penalty_type": "diff2", "affine": False}),
    ],
)
def test_fused_equals_eager_for_every_option(name, loss_of, options):
    x, pad = torch.randn(5, 11, 16, dtype=torch.float64) * 3 - 1, random_padding(5, 11)
    fused_out = _train_step(name, "fused", x, pad, torch.float64, loss_of, **options)
    eager_out = _train_step(name, "eager", x, pad, torch.float64, loss_of, **options)
    assert fused_out.keys() == eager_out.keys()
    for key in fused_out:
        torch.testing.assert_close(fused_out[key], eager_out[key], rtol=1e-12, atol=1e-12, msg=f"{key} differs")


@needs_kernel
def test_tiny_variances_take_the_clamp_in_both_kernels():
    # channels whose batch variance is below eps: the clamp's zero gradient must agree too
    x = torch.randn(4, 6, 8, dtype=torch.float64)
    x[..., :3] = 0.25 + 1e-4 * x[..., :3]
    pad = random_padding(4, 6)
    fused_out = _train_step("bn", "fused", x, pad, torch.float64)
    eager_out = _train_step("bn", "eager", x, pad, torch.float64)
    for key in fused_out:
        torch.testing.assert_close(fused_out[key], eager_out[key], rtol=1e-10, atol=1e-10, msg=f"{key} differs")


@needs_kernel
def test_fused_kernel_is_deterministic():
    x, pad = torch.randn(64, 30, 48), random_padding(64, 30)
    first = _train_step("bn", "fused", x, pad, torch.float32)
    again = _train_step("bn", "fused", x, pad, torch.float32)
    for key in first:
        assert torch.equal(first[key], again[key]), key


@needs_kernel
def test_build_goes_to_the_cache_once(tmp_path, monkeypatch):
    monkeypatch.setenv("NORMLAB_KERNEL_CACHE", str(tmp_path / "kernels"))
    built = fused._build()
    assert built.parent == tmp_path / "kernels" and built.suffix == ".so"
    mtime = built.stat().st_mtime_ns
    assert fused._build() == built and built.stat().st_mtime_ns == mtime  # reused, not rebuilt
    assert [p.name for p in built.parent.iterdir()] == [built.name]  # no temporary left behind


def test_a_failing_compiler_is_a_clear_error(tmp_path, monkeypatch):
    broken = tmp_path / "broken-cc"
    broken.write_text("#!/bin/sh\necho 'cc: error: this compiler is broken' >&2\nexit 1\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("CC", str(broken))
    monkeypatch.setenv("NORMLAB_KERNEL_CACHE", str(tmp_path / "kernels"))
    with pytest.raises(fused.FusedKernelUnavailable, match="this compiler is broken"):
        fused._build()
    assert not any((tmp_path / "kernels").glob("*.so"))


@needs_kernel
def test_an_unwritable_cache_names_the_variable_to_set(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("NORMLAB_KERNEL_CACHE", str(blocker / "kernels"))
    with pytest.raises(fused.FusedKernelUnavailable, match="NORMLAB_KERNEL_CACHE"):
        fused._build()


def test_without_a_compiler_auto_warns_once_and_runs_eager(monkeypatch):
    monkeypatch.setattr(fused, "available", lambda: (False, "no C compiler found (test)"))
    monkeypatch.setattr(batch, "_WARNED", set())
    x, pad = torch.randn(4, 6, 8), random_padding(4, 6)
    with pytest.warns(UserWarning, match="no C compiler found"):
        y = build_norm("bn", 8)(x, pad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second norm does not warn again
        y2 = build_norm("bn", 8, kernel="auto")(x, pad)
    torch.testing.assert_close(y, y2)
    torch.testing.assert_close(y, build_norm("bn", 8, kernel="eager")(x, pad))
    with pytest.raises(fused.FusedKernelUnavailable, match="kernel='eager'"):
        build_norm("rbn", 8, kernel="fused")(x, pad)


def test_fused_on_another_device_says_it_is_for_the_cpu():
    x = torch.randn(2, 3, 8, device="meta")
    with pytest.raises(ValueError, match="float32/64 on the CPU; got torch.float32 on meta"):
        build_norm("bn", 8, kernel="fused").to("meta")(x)
    # "auto" takes the eager path there without a word (GPUs run it by design)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build_norm("bn", 8, kernel="auto")._fused(x) is False


def test_unknown_kernel_names_the_choices():
    with pytest.raises(ValueError, match="auto.*fused.*eager"):
        build_norm("bn", 8, kernel="cuda")


def test_eval_and_non_float_paths_do_not_need_the_kernel(monkeypatch):
    monkeypatch.setattr(fused, "available", lambda: (False, "no C compiler found (test)"))
    norm = build_norm("bn", 8, kernel="fused").eval()  # population statistics: no training pass
    x = torch.randn(2, 3, 8)
    torch.testing.assert_close(norm(x), x / (1.0 + norm.eps) ** 0.5 if norm.eps_mode == "add" else x)


@needs_kernel
@pytest.mark.parametrize("case", ["empty batch", "all padding"])
def test_batches_without_tokens_agree_and_stay_finite(case):
    # no token to pool: count clamps to 1, statistics are 0, nothing is NaN, in both kernels
    x = torch.randn((0, 5, 8) if case == "empty batch" else (2, 3, 8), dtype=torch.float64)
    pad = None if case == "empty batch" else torch.ones(2, 3, dtype=torch.bool)
    fused_out = _train_step("rbn", "fused", x, pad, torch.float64, "both")
    eager_out = _train_step("rbn", "eager", x, pad, torch.float64, "both")
    for key in fused_out:
        assert torch.isfinite(fused_out[key]).all(), key
        torch.testing.assert_close(fused_out[key], eager_out[key], rtol=1e-12, atol=1e-12, msg=f"{key} differs")
