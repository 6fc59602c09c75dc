"""Padding never changes a statistic: appending pad tokens leaves every non-pad output unchanged."""

import copy

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from .helpers import ALL_NORMS, make_norm

DIM = 8


@st.composite
def padded_batches(draw):
    batch = draw(st.integers(1, 4))
    time = draw(st.integers(1, 6))
    extra = draw(st.integers(1, 4))
    lengths = draw(st.lists(st.integers(1, time), min_size=batch, max_size=batch))
    seed = draw(st.integers(0, 2**16))
    garbage = draw(st.sampled_from([0.0, 1.0, -50.0, 1e4]))
    return batch, time, extra, lengths, seed, garbage


def _run(norm, x, pad, training, loss_weights):
    norm.train(training)
    x = x.clone().requires_grad_(True)
    y = norm(x, pad)
    # The loss sees only non-pad outputs, as the task losses and attention masks do downstream.
    # (Random weights: Σy² alone is constant under BN and would give a zero gradient.)
    norm.zero_grad()
    w = torch.zeros(y.shape)
    w[:, : loss_weights.shape[1]] = loss_weights
    (y.masked_fill(pad.unsqueeze(-1), 0.0) * w).sum().backward()
    grads = {n: p.grad.clone() for n, p in norm.named_parameters()}
    return y, grads, x.grad


@settings(max_examples=25, deadline=None)
@given(padded_batches())
def test_appending_padding_changes_no_output_gradient_or_buffer(case):
    batch, time, extra, lengths, seed, garbage = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, time, DIM, generator=gen) * 2 + 0.5
    pad = torch.arange(time).unsqueeze(0) >= torch.tensor(lengths).unsqueeze(1)
    x_long = torch.cat([x, torch.full((batch, extra, DIM), garbage)], dim=1)
    x_long[:, :time][pad] = garbage  # existing pad positions get the garbage value too
    pad_long = torch.cat([pad, torch.ones(batch, extra, dtype=torch.bool)], dim=1)
    for name in ALL_NORMS:
        base = make_norm(name, DIM)
        for _ in range(2):  # move running statistics (and PowerNorm past warm-up) off their init
            base.train()
            y = base(torch.randn(3, 4, DIM, generator=gen), None)
            if y.requires_grad:
                y.sum().backward()
        for training in (True, False):
            short, long = copy.deepcopy(base), copy.deepcopy(base)
            loss_weights = torch.randn(batch, time, DIM, generator=gen)
            y_s, g_s, gx_s = _run(short, x, pad, training, loss_weights)
            y_l, g_l, gx_l = _run(long, x_long, pad_long, training, loss_weights)
            keep = ~pad
            torch.testing.assert_close(y_l[:, :time][keep], y_s[keep], msg=f"{name} output")
            torch.testing.assert_close(gx_l[:, :time][keep], gx_s[keep], msg=f"{name} input grad")
            for k in g_s:
                torch.testing.assert_close(g_l[k], g_s[k], msg=f"{name} grad {k}")
            for (k, b_s), b_l in zip(short.state_dict().items(), long.state_dict().values(), strict=True):
                torch.testing.assert_close(b_l, b_s, msg=f"{name} buffer {k}")
