"""Each norm against an independent reference: PyTorch's own layers or the published formula."""

import pytest
import torch
import torch.nn.functional as F

from normlab.norms import build_norm

from .helpers import random_padding


def _bn_torch_conventions(dim):
    return build_norm("bn", dim, momentum=0.05, eps=1e-5, eps_mode="add", running_var="unbiased")


def test_bn_equals_batchnorm1d_unpadded_train_and_eval():
    ours = _bn_torch_conventions(12)
    ref = torch.nn.BatchNorm1d(12, momentum=0.05, eps=1e-5)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5), ours.bias.uniform_(-1, 1)
        ref.weight.copy_(ours.weight), ref.bias.copy_(ours.bias)
    for _ in range(4):
        x = torch.randn(6, 9, 12) * 3 + 2
        torch.testing.assert_close(ours(x), ref(x.reshape(-1, 12)).reshape(6, 9, 12))
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    ours.eval(), ref.eval()
    x = torch.randn(3, 5, 12)
    torch.testing.assert_close(ours(x), ref(x.reshape(-1, 12)).reshape(3, 5, 12))


def test_bn_on_padded_data_equals_batchnorm1d_on_the_non_pad_tokens():
    ours = _bn_torch_conventions(10)
    ref = torch.nn.BatchNorm1d(10, momentum=0.05, eps=1e-5)
    for _ in range(3):
        x = torch.randn(5, 11, 10)
        pad = random_padding(5, 11)
        x[pad] = 1e3  # garbage at padding must not leak into any statistic
        y = ours(x, pad)
        y_ref = ref(x[~pad])
        torch.testing.assert_close(y[~pad], y_ref)
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    ours.eval(), ref.eval()
    x, pad = torch.randn(4, 6, 10), random_padding(4, 6)
    torch.testing.assert_close(ours(x, pad)[~pad], ref(x[~pad]))


def _authors_bn_reference(x, keep, running_mean, running_var, momentum, eps):
    """The RBN authors' MaskBatchNorm3d in training mode, written out with float64 numpy-style ops."""
    tokens = x[keep].double()
    n = tokens.shape[0]
    mu = tokens.sum(0) / n
    var = (tokens**2).sum(0) / n - mu**2  # biased
    new_mean = (1 - momentum) * running_mean.double() + momentum * mu
    new_var = (1 - momentum) * running_var.double() + momentum * var
    y = (x.double() - mu) / torch.sqrt(torch.clamp(var, min=eps))
    return y, new_mean, new_var


def test_bn_defaults_follow_the_authors_code():
    bn = build_norm("bn", 8)  # momentum 0.05, clamp eps 1e-5, biased running variance
    assert bn.momentum == 0.05 and bn.eps == 1e-5
    rm, rv = bn.running_mean.clone(), bn.running_var.clone()
    x, pad = torch.randn(4, 7, 8), random_padding(4, 7)
    x[..., 3] *= 1e-4  # a near-constant channel: the clamp (not +eps) matters here
    y = bn(x, pad)
    y_ref, m_ref, v_ref = _authors_bn_reference(x, ~pad, rm, rv, 0.05, 1e-5)
    torch.testing.assert_close(y[~pad].double(), y_ref[~pad], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_mean.double(), m_ref)
    torch.testing.assert_close(bn.running_var.double(), v_ref)
    bn.eval()
    x2 = torch.randn(2, 3, 8)
    expected = (x2 - bn.running_mean) / bn.running_var.clamp_min(1e-5).sqrt()
    torch.testing.assert_close(bn(x2), expected)


@pytest.mark.parametrize("name, affine", [("ln", True), ("ln_simple", False)])
def test_layer_norms_equal_functional_layer_norm(name, affine):
    norm = build_norm(name, 16)
    if affine:
        with torch.no_grad():
            norm.weight.normal_(), norm.bias.normal_()
    x = torch.randn(3, 5, 16) * 4 + 1
    w, b = (norm.weight, norm.bias) if affine else (None, None)
    torch.testing.assert_close(norm(x), F.layer_norm(x, (16,), w, b, 1e-5))


def test_rmsnorm_matches_its_formula():
    norm = build_norm("rmsnorm", 16)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
    x = torch.randn(3, 5, 16) * 3
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-8) * norm.weight
    torch.testing.assert_close(norm(x), expected)


def test_detachnorm_forward_equals_ln_simple():
    x = torch.randn(2, 4, 16)
    torch.testing.assert_close(build_norm("detachnorm", 16)(x), build_norm("ln_simple", 16)(x))


def test_adanorm_forward_matches_its_formula():
    x = torch.randn(2, 4, 16)
    y = F.layer_norm(x, (16,), eps=1e-5)
    torch.testing.assert_close(build_norm("adanorm", 16, scale=1.5)(x), 1.5 * y * (1 - 0.1 * y))


def test_none_is_identity():
    x = torch.randn(2, 3, 4)
    assert build_norm("none", 4)(x) is x


def test_batch_statistics_inference_uses_the_batch_and_updates_nothing():
    from normlab.norms import batch_stats_inference

    for name in ("bn", "rbn", "pn_vanilla", "powernorm"):
        norm = build_norm(name, 8)
        x = torch.randn(4, 5, 8) * 2 + 1
        for _ in range(3):
            norm(torch.randn(4, 5, 8))
        norm.eval()
        buffers = {k: v.clone() for k, v in norm.state_dict().items()}
        with batch_stats_inference(norm):
            y_batch = norm(x)
        assert not norm.eval_with_batch_stats
        for k, v in norm.state_dict().items():
            torch.testing.assert_close(v, buffers[k], msg=f"{name}: {k} changed")
        if name in ("bn", "rbn"):
            mu, var = x.mean((0, 1)), x.var((0, 1), unbiased=False)
            torch.testing.assert_close(y_batch, (x - mu) / var.clamp_min(1e-5).sqrt(), rtol=1e-4, atol=1e-5)
        assert not torch.allclose(y_batch, norm(x)), f"{name}: batch and population statistics agree?"


def test_batch_statistics_stay_float32_under_bf16_autocast():
    x, pad = torch.randn(8, 16, 32) * 3 + 5, random_padding(8, 16)
    for name in ("bn", "rbn", "pn_vanilla", "powernorm"):
        plain, mixed = build_norm(name, 32), build_norm(name, 32)
        plain(x, pad)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = mixed(x.bfloat16(), pad)
        assert mixed.batch_var.dtype == torch.float32 and y.dtype == torch.float32
        # the only difference left is the bf16 rounding of the input itself (~0.4 %), not the sums
        torch.testing.assert_close(mixed.batch_var, plain.batch_var, rtol=1e-2, atol=1e-3)
        if mixed.batch_mean is not None:
            exact = x.bfloat16().float()[~pad].mean(0)
            torch.testing.assert_close(mixed.batch_mean, exact, rtol=1e-5, atol=1e-5)
