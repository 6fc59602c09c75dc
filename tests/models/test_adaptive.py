"""Adaptive input and adaptive softmax: normalisation, the one-cluster case, tying as Transformer-XL."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from normlab.models.adaptive import AdaptiveEmbedding, AdaptiveSoftmax, cluster_bounds

V, D = 50, 16


def hidden(n=20, seed=0):
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def every_id():
    return torch.arange(V)


def test_one_cluster_embedding_is_a_plain_scaled_embedding():
    emb = AdaptiveEmbedding(V, D)
    ids = torch.randint(0, V, (3, 7))
    assert not emb.projections
    torch.testing.assert_close(emb(ids), F.embedding(ids, emb.tables[0].weight) * math.sqrt(D))


@pytest.mark.parametrize("div_val", [1, 2, 4])
def test_clustered_embedding_looks_each_id_up_in_its_cluster(div_val):
    emb = AdaptiveEmbedding(V, D, cutoffs=(10, 30), div_val=div_val)
    assert emb.dims == [D, D // div_val, D // div_val**2]
    assert sorted(emb.projections) == ([] if div_val == 1 else ["1", "2"])
    ids = every_id().view(5, 10)
    got = emb(ids)
    for i in every_id().tolist():
        c = 0 if i < 10 else 1 if i < 30 else 2
        row = emb.tables[c].weight[i - emb.bounds[c]]
        if (proj := emb.projection(c)) is not None:
            row = row @ proj
        torch.testing.assert_close(got.view(-1, D)[i], row * math.sqrt(D))


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("cutoffs,div_val", [((), 1), ((10, 30), 1), ((10, 30), 2), ((5,), 4)])
def test_log_probabilities_sum_to_one_and_nll_is_their_negative(cutoffs, div_val, tied):
    emb = AdaptiveEmbedding(V, D, cutoffs, div_val).double()
    out = AdaptiveSoftmax(D, V, cutoffs, div_val, emb if tied else None).double()
    h = hidden()
    lp = out.log_prob(h)
    assert lp.shape == (20, V)
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(20, dtype=torch.float64))
    target = torch.arange(20) * 2 % V  # ids from every cluster
    torch.testing.assert_close(out.nll(h, target), -lp.gather(1, target[:, None]).squeeze(1))


def test_one_cluster_is_the_full_softmax_over_the_tied_table():
    emb = AdaptiveEmbedding(V, D).double()
    out = AdaptiveSoftmax(D, V, tie_to=emb).double()
    with torch.no_grad():
        out.bias.normal_()
    h = hidden()
    assert out.weight is emb.tables[0].weight and out.asm is None
    torch.testing.assert_close(out.log_prob(h), F.log_softmax(h @ emb.tables[0].weight.T + out.bias, -1))


@pytest.mark.parametrize("div_val", [1, 2])
def test_tied_adaptive_softmax_is_the_two_level_factorisation_over_the_input_tables(div_val):
    """log p(w) = log softmax(head)[w] in the shortlist; log softmax(head)[cluster] + log softmax(tail)[w]
    outside, with the head's shortlist rows, the tails' tables and projections those of the input side."""
    cutoffs = (10, 30)
    emb = AdaptiveEmbedding(V, D, cutoffs, div_val).double()
    out = AdaptiveSoftmax(D, V, cutoffs, div_val, emb).double()
    with torch.no_grad():
        for p in out.parameters():
            if p.dim() == 1:
                p.normal_()  # biases: make them matter
    h = hidden()
    head = out.asm.head
    head_lp = F.log_softmax(h @ torch.cat([emb.tables[0].weight, head.cluster_weight]).T + head.bias, -1)
    want = torch.empty(20, V, dtype=torch.float64)
    want[:, :10] = head_lp[:, :10]
    for c, (lo, hi) in enumerate([(10, 30), (30, V)], start=1):
        proj = emb.projection(c)
        z = h if proj is None else h @ proj.T
        tail_lp = F.log_softmax(z @ emb.tables[c].weight.T + out.asm.tail[c - 1][1].bias, -1)
        want[:, lo:hi] = head_lp[:, 10 + c - 1 : 10 + c] + tail_lp
    torch.testing.assert_close(out.log_prob(h), want)


def test_tying_shares_the_tensors_and_div_val_one_has_no_projections():
    emb = AdaptiveEmbedding(V, D, (10, 30), 1)
    tied, untied = AdaptiveSoftmax(D, V, (10, 30), 1, emb), AdaptiveSoftmax(D, V, (10, 30), 1)
    assert tied.asm.head.shortlist_weight is emb.tables[0].weight
    assert all(tied.asm.tail[i][1].weight is emb.tables[i + 1].weight for i in range(2))
    assert all(isinstance(t[0], torch.nn.Identity) for t in tied.asm.tail)  # as Transformer-XL, div_val 1
    n_own = sum(p.numel() for p in tied.parameters()) - sum(p.numel() for p in emb.parameters())
    assert n_own == 2 * D + (10 + 2) + 20 + 20  # cluster rows, head bias, tail biases
    assert sum(p.numel() for p in untied.parameters()) == V * D + n_own
    emb2 = AdaptiveEmbedding(V, D, (10, 30), 2)
    tied2 = AdaptiveSoftmax(D, V, (10, 30), 2, emb2)
    assert tied2.asm.tail[0][0].weight is emb2.projections["1"]
    assert (
        AdaptiveSoftmax(D, V, (10, 30), 2, emb2, tie_projections=False).asm.tail[0][0].weight
        is not emb2.projections["1"]
    )


def test_gradients_reach_both_sides_through_the_ties():
    emb = AdaptiveEmbedding(V, D, (10, 30), 2)
    out = AdaptiveSoftmax(D, V, (10, 30), 2, emb)
    ids = every_id()
    out.nll(emb(ids), ids.roll(1)).sum().backward()
    params = {**dict(emb.named_parameters()), **{f"out.{n}": p for n, p in out.named_parameters()}}
    assert [n for n, p in params.items() if p.grad is None or not p.grad.abs().sum() > 0] == []


def test_bad_cutoffs_and_mismatched_ties_are_refused():
    for bad in [(30, 10), (0, 10), (10, 10), (10, V)]:
        with pytest.raises(ValueError, match="cutoffs"):
            cluster_bounds(V, bad)
    with pytest.raises(ValueError, match="div_val"):
        AdaptiveEmbedding(V, D, (10,), div_val=0.5)
    with pytest.raises(ValueError, match="same vocabulary"):
        AdaptiveSoftmax(D, V, (10, 30), 1, AdaptiveEmbedding(V, D, (10,), 1))
