"""Transformer-XL: memory equals full context, relative positions, masking, norms, padding, evaluation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from normlab.models.options import ModelOptions
from normlab.models.transformer_xl import (
    Memory,
    RelativeSelfAttention,
    TransformerXL,
    XLConfig,
    attention_mask,
    evaluate_stream,
    rel_shift,
    stream_segments,
)
from normlab.norms import NORMS, MaskedBatchNorm, RegularizedBatchNorm, regularization_loss

VOCAB = 40
TINY = dict(d_model=16, n_heads=2, d_ff=32, n_layers=2, dropout=0.0)
NORM_OPTIONS = {"rbn": {"penalty_mean": 0.1, "penalty_var": 0.1}, "powernorm": {"warmup_iters": 0}}


def make(norm="ln", placement="post", seed=0, dtype=torch.float64, xl=None, **opts):
    torch.manual_seed(seed)
    o = ModelOptions(**{**TINY, **opts}, norm=norm, norm_options=NORM_OPTIONS.get(norm, {}), placement=placement)
    model = TransformerXL(o, VOCAB, {"mem_len": 6, **(xl or {})})
    return model.to(dtype)


def tokens(b=3, t=12, seed=1):
    return torch.randint(0, VOCAB, (b, t), generator=torch.Generator().manual_seed(seed))


def warm_up_statistics(model, steps=3):
    """A few training forwards so running statistics are not the initial ones."""
    model.train()
    with torch.no_grad():
        for s in range(steps):
            model(tokens(seed=100 + s))


def concatenated_log_probs(model, toks, seg_len, mem_len):
    """One pass over the whole sequence with the mask segment recurrence implies:
    position p sees keys k with p - k >= 0 and k >= start of p's segment - mem_len
    (and p - k < mem_len with same_length)."""
    n = toks.shape[1]
    p, k = torch.arange(n)[:, None], torch.arange(n)[None]
    allowed = (k <= p) & (k >= (p // seg_len) * seg_len - mem_len)
    if model.xl.same_length:
        allowed &= p - k < mem_len
    allowed = allowed[None, None]
    x = model.embed(toks)
    rel = model.positions(n, model.xl.clamp_len, x.dtype)
    for layer in model.decoder.layers:
        x, _ = layer(x, None, rel, model.u, model.v, allowed, None)
    if model.decoder.final_norm is not None:
        x = model.decoder.final_norm(x)
    return model.out.log_prob(x.reshape(-1, x.shape[-1])).view(*toks.shape, -1)


def segmented_log_probs(model, toks, seg_len, mem_len):
    out, memory = [], None
    for s in range(0, toks.shape[1], seg_len):
        lp, memory = model(toks[:, s : s + seg_len], memory=memory, mem_len=mem_len)
        out.append(lp)
    return torch.cat(out, dim=1)


def test_rel_shift_matches_explicit_indexing():
    q, k = 5, 9
    x = torch.randn(2, 3, q, k)
    out = rel_shift(x)
    for i in range(q):
        for j in range(k):
            if k - q + i - j >= 0:  # causal part: key j at distance K - Q + i - j
                assert out[..., i, j].equal(x[..., i, j + q - 1 - i])


def test_relative_attention_matches_the_formula_written_out():
    torch.manual_seed(0)
    h, dh, d, q_len, m_len = 2, 4, 8, 3, 4
    attn = RelativeSelfAttention(d, h, dh).double()
    x, mem = torch.randn(1, q_len, d, dtype=torch.float64), torch.randn(1, m_len, d, dtype=torch.float64)
    context = torch.cat([mem, x], 1)
    u, v = torch.randn(h, dh, dtype=torch.float64), torch.randn(h, dh, dtype=torch.float64)
    k_len = m_len + q_len
    rel = torch.randn(k_len, d, dtype=torch.float64)  # row r: encoding of distance k_len - 1 - r
    got = attn(x, context, rel, u, v, attention_mask(q_len, m_len, None, x.device))
    qh = attn.q_proj(x).view(q_len, h, dh)
    kh, vh = (t.view(k_len, h, dh) for t in attn.kv_proj(context)[0].chunk(2, -1))
    rh = attn.r_proj(rel).view(k_len, h, dh)
    out = torch.zeros(q_len, h, dh, dtype=torch.float64)
    for i in range(q_len):
        scores = torch.full((h, k_len), float("-inf"), dtype=torch.float64)
        for j in range(m_len + i + 1):
            dist = m_len + i - j
            scores[:, j] = ((qh[i] + u) * kh[j]).sum(-1) + ((qh[i] + v) * rh[k_len - 1 - dist]).sum(-1)
        w = torch.softmax(scores / math.sqrt(dh), dim=-1)
        out[i] = torch.einsum("hk,khd->hd", w, vh)
    want = attn.out_proj(out.reshape(1, q_len, h * dh))
    torch.testing.assert_close(got, want)


def test_relative_attention_gradients_pass_gradcheck():
    """Including through the position term, which enters scaled_dot_product_attention as its mask."""
    torch.manual_seed(0)
    attn = RelativeSelfAttention(6, 2, 3).double()
    u, v = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    mem = torch.randn(1, 2, 6, dtype=torch.float64)
    allowed = attention_mask(3, 2, None, torch.device("cpu"))

    def f(x, rel, u, v):
        return attn(x, torch.cat([mem, x], 1), rel, u, v, allowed)

    inputs = (torch.randn(1, 3, 6, dtype=torch.float64), torch.randn(5, 6, dtype=torch.float64), u, v)
    assert torch.autograd.gradcheck(f, tuple(t.requires_grad_() for t in inputs))


@pytest.mark.parametrize("placement", ["post", "pre"])
@pytest.mark.parametrize("norm", list(NORMS))
@pytest.mark.parametrize("mem_len", [4, 8])
def test_memory_gives_the_logits_of_the_concatenated_segments(norm, placement, mem_len):
    model = make(norm, placement, xl={"mem_len": mem_len})
    warm_up_statistics(model)
    model.eval()
    toks = tokens(t=13)  # segments 4, 4, 4, 1
    with torch.no_grad():
        want = concatenated_log_probs(model, toks, 4, mem_len)
        got = segmented_log_probs(model, toks, 4, mem_len)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    if mem_len == 4:  # the memory mattered: with none, the later segments differ
        with torch.no_grad():
            none = segmented_log_probs(model, toks, 4, 0)
        # 1000x the tolerance above (an untrained DyT stack barely depends on its input: ~1e-5)
        assert (none[:, 4:] - want[:, 4:]).abs().max() > 1e-6


@pytest.mark.parametrize("same_length", [False, True])
@pytest.mark.parametrize("placement", ["post", "pre"])
def test_memory_equivalence_in_training_mode_with_adaptive_layers_and_clamping(placement, same_length):
    """LN has no batch statistics: training mode (dropout 0) must match too; cutoffs, clamp_len and
    same_length on."""
    xl = {"mem_len": 5, "cutoffs": (10, 25), "div_val": 2, "clamp_len": 3, "same_length": same_length}
    model = make("ln", placement, xl=xl)
    toks = tokens(t=12)
    with torch.no_grad():
        torch.testing.assert_close(
            segmented_log_probs(model, toks, 4, 5), concatenated_log_probs(model, toks, 4, 5), rtol=1e-9, atol=1e-9
        )


def test_shifting_the_whole_context_changes_nothing():
    """Prepend 5 masked positions to the memory: every absolute position moves by 5, the output must not."""
    model = make("ln", "pre", xl={"mem_len": 20}).eval()
    toks = tokens(t=10)
    with torch.no_grad():
        _, memory = model(toks[:, :6])
        want, _ = model(toks[:, 6:], memory=memory)
        junk = tuple(torch.randn(3, 5, 16, dtype=torch.float64) for _ in memory.states)
        shifted = Memory(
            tuple(torch.cat([j, m], 1) for j, m in zip(junk, memory.states, strict=True)),
            torch.cat([torch.ones(3, 5, dtype=torch.bool), torch.zeros(3, 6, dtype=torch.bool)], 1),
        )
        got, _ = model(toks[:, 6:], memory=shifted)
        visible, _ = model(toks[:, 6:], memory=Memory(shifted.states, None))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    assert (visible - want).abs().max() > 1e-4  # the junk, once visible, does change the output


def test_attention_mask_window_and_padding():
    m = attention_mask(3, 4, None, torch.device("cpu"))[0, 0]
    assert m.tolist() == [[True] * 5 + [False] * 2, [True] * 6 + [False], [True] * 7]
    w = attention_mask(3, 4, None, torch.device("cpu"), window=4)[0, 0]
    assert w.sum(1).tolist() == [4, 4, 4]  # same_length: every query sees its last 4 keys
    assert w[0].tolist() == [False, True, True, True, True, False, False]
    pad = torch.tensor([[True, False, False, False, False, False, True]])
    p = attention_mask(3, 4, pad, torch.device("cpu"))[0, 0]
    assert not p[:, 0].any() and p[2, 6]  # a padded key is hidden, except from itself
    assert not p[:2, 6].any()


def test_clamp_len_reuses_the_clamped_encoding():
    model = make(xl={"clamp_len": 3})
    enc = model.positions(8, 3, torch.float64)  # rows: distances 7..0
    for r in range(5):
        assert enc[r].equal(enc[4])  # distances 7..3 all use distance 3
    assert not enc[5].equal(enc[4])


def test_gradients_reach_every_parameter_and_not_the_memory():
    for placement in ("post", "pre"):
        model = make("bn", placement, xl={"mem_len": 6, "cutoffs": (10, 25), "div_val": 2}, dtype=torch.float32)
        model.train()
        toks = torch.arange(0, 36).view(3, 12) % VOCAB  # every cluster in inputs and targets
        _, memory = model(toks[:, :6], toks[:, 1:7])
        assert all(not s.requires_grad and s.grad_fn is None for s in memory.states)
        nll, new_memory = model(toks[:, 6:11], toks[:, 7:12], memory)
        nll.mean().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert missing == [], f"{placement}: no gradient for {missing}"
        assert all(not s.requires_grad for s in new_memory.states)


@pytest.mark.parametrize("placement", ["post", "pre"])
@pytest.mark.parametrize("norm", list(NORMS))
def test_every_norm_builds_and_trains_in_both_placements(norm, placement):
    model = make(norm, placement, dtype=torch.float32, xl={"cutoffs": (20,), "div_val": 2})
    names = {n for n, m in model.named_modules() if type(m) is NORMS[norm]}
    expected = {f"decoder.layers.{i}.{k}" for i in range(2) for k in ("attn_norm", "ffn_norm")}
    assert names == (expected | ({"decoder.final_norm"} if placement == "pre" else set()))
    model.train()
    toks = tokens()
    nll, memory = model(toks[:, :6], toks[:, 1:7])
    nll, memory = model(toks[:, 6:11], toks[:, 7:12], memory)
    loss = nll.mean() + regularization_loss(model, nll.numel())
    loss.backward()
    assert torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        lp, _ = model(toks[:, :5], memory=memory)
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(3, 5))


@pytest.mark.parametrize("norm", ["bn", "rbn"])
def test_padding_changes_no_output_and_no_batch_statistic(norm):
    """Training mode: a segment padded at the end (garbage tokens, pad_mask) gives the real positions
    the same NLL, the norms the same running statistics and RBN the same penalty as the unpadded one."""
    base = make(norm, "pre", dtype=torch.float64)
    base.train()
    toks = tokens(b=3, t=10)
    with torch.no_grad():
        _, memory = base(toks[:, :5], toks[:, 1:6])
    a, b = copy.deepcopy(base), copy.deepcopy(base)
    seg, tgt = toks[:, 5:9], toks[:, 6:10]
    nll_a, mem_a = a(seg, tgt, memory)
    garbage = tokens(b=3, t=3, seed=7)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[:, 4:] = True
    nll_b, mem_b = b(torch.cat([seg, garbage], 1), torch.cat([tgt, garbage], 1), memory, pad_mask=pad)
    torch.testing.assert_close(nll_b[:, :4], nll_a, rtol=1e-10, atol=1e-10)
    assert nll_b[:, 4:].eq(0).all()
    norms_a = [m for m in a.modules() if isinstance(m, MaskedBatchNorm)]
    norms_b = [m for m in b.modules() if isinstance(m, MaskedBatchNorm)]
    assert len(norms_a) == 5
    for na, nb in zip(norms_a, norms_b, strict=True):
        torch.testing.assert_close(nb.running_mean, na.running_mean, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(nb.running_var, na.running_var, rtol=1e-10, atol=1e-12)
        if isinstance(na, RegularizedBatchNorm):
            torch.testing.assert_close(nb.penalty(), na.penalty(), rtol=1e-9, atol=1e-12)
    assert mem_b.pad_mask[:, -3:].all() and not mem_b.pad_mask[:, :-3].any()


@pytest.mark.parametrize("norm", ["bn", "rbn"])
def test_ragged_rows_ignore_what_sits_in_their_padding(norm):
    model = make(norm, "post", dtype=torch.float64)
    pad = torch.arange(8)[None] >= torch.tensor([[8], [5], [3]])
    results = []
    for seed in (1, 2):
        m = copy.deepcopy(model).train()
        toks = tokens(b=3, t=8).masked_scatter(pad, tokens(b=3, t=8, seed=seed + 10)[pad])
        nll, _ = m(toks, toks, pad_mask=pad)
        results.append((nll, [n.running_var.clone() for n in m.modules() if isinstance(n, MaskedBatchNorm)]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-10, atol=1e-10)
    for va, vb in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(va, vb, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("norm", ["bn", "rbn"])
def test_in_eval_mode_a_row_does_not_depend_on_the_other_rows(norm):
    model = make(norm, "pre")
    warm_up_statistics(model)
    model.eval()
    a, b = tokens(seed=1), tokens(seed=2)
    b[0] = a[0]
    with torch.no_grad():
        la, _ = model(a)
        lb, _ = model(b)
        train_a, _ = model.train()(a)
        train_b, _ = model(b)
    torch.testing.assert_close(la[0], lb[0], rtol=1e-10, atol=1e-10)
    assert (train_a[0] - train_b[0]).abs().max() > 1e-6  # training mode: batch statistics couple the rows


def test_stream_segments_cut_the_stream_as_the_scripts():
    stream = torch.arange(23)
    segs = list(stream_segments(stream, batch_size=2, tgt_len=4))  # 11 per row, the 23rd token dropped
    assert [s[0].shape for s in segs] == [(2, 4), (2, 4), (2, 2)]
    assert segs[0][0][1].tolist() == [11, 12, 13, 14] and segs[0][1][1].tolist() == [12, 13, 14, 15]
    assert torch.cat([t for _, t in segs], 1).tolist() == [list(range(1, 11)), list(range(12, 22))]
    with pytest.raises(ValueError, match="too short"):
        list(stream_segments(torch.arange(3), 2, 4))


def test_evaluate_stream_with_enough_memory_is_the_full_context_nll():
    """With a memory longer than a row, segment recurrence sees everything: the stream's summed NLL
    equals one full causal pass over each row.  Token count: batch·(len // batch − 1)."""
    model = make("bn", "post", xl={"mem_len": 6, "init_std": 0.3})  # large weights: context matters
    warm_up_statistics(model)
    stream = torch.randint(0, VOCAB, (101,), generator=torch.Generator().manual_seed(3))
    nll, n = evaluate_stream(model, stream, batch_size=4, tgt_len=7, mem_len=40)
    assert n == 4 * (101 // 4 - 1) and model.training
    rows = stream[:100].view(4, 25)
    with torch.no_grad():
        full, _ = model.eval()(rows[:, :-1], rows[:, 1:], mem_len=0)
    assert nll == pytest.approx(full.sum().item(), rel=1e-10)
    short, _ = evaluate_stream(model, stream, batch_size=4, tgt_len=7, mem_len=0)
    assert abs(short - nll) > 1e-3 * nll  # a memory-less evaluation differs


def test_xl_config_rules_and_errors():
    assert XLConfig(tgt_len=150, mem_len=150, eval_tgt_len=150).evaluation_lengths() == (150, 150)
    assert XLConfig(tgt_len=32, mem_len=32, eval_tgt_len=16).evaluation_lengths() == (16, 48)
    assert XLConfig(tgt_len=32, mem_len=0).evaluation_lengths() == (32, 0)
    with pytest.raises(ValueError, match="ext_len"):
        XLConfig(tgt_len=32, mem_len=0, eval_tgt_len=16).evaluation_lengths()
    with pytest.raises(ValueError, match="unknown Transformer-XL option"):
        XLConfig.from_dict({"mem_lenn": 3})
    with pytest.raises(ValueError, match="same_length"):
        XLConfig(mem_len=0, same_length=True)
    with pytest.raises(ValueError, match="norm_scope"):
        TransformerXL(ModelOptions(**TINY, norm_scope="encoder"), VOCAB)
    with pytest.raises(ValueError, match="cutoffs"):
        make(xl={"cutoffs": (30, 10)})
    model = make()
    _, memory = model(tokens(b=3))
    with pytest.raises(ValueError, match="does not fit"):
        model(tokens(b=2), memory=memory)


def test_d_head_can_differ_from_d_model_over_heads():
    """The scripts' PTB/WT103 base: one head of width 40 beside d_model 512."""
    model = make(n_heads=1, xl={"d_head": 5})
    assert model.u.shape == (1, 5) and model.decoder.layers[0].attn.q_proj.weight.shape == (5, 16)
    nll, _ = model(tokens(), tokens())
    assert torch.isfinite(nll).all()


def test_the_memory_carries_information_across_segments():
    """The stream repeats each random 8-token block once; the second copy is the next segment.  Its
    targets sit 7 positions back, in the memory: with one, the loss falls far below log V (a single
    relative-attention layer can look back a fixed distance); without one it cannot."""

    def train(mem_len):
        torch.manual_seed(0)
        o = ModelOptions(d_model=32, n_heads=2, d_ff=64, n_layers=1, dropout=0.0)
        model = TransformerXL(o, 16, {"mem_len": mem_len})
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        g = torch.Generator().manual_seed(0)
        for _ in range(150):
            block = torch.randint(0, 16, (32, 8), generator=g)
            _, memory = model(block, mem_len=mem_len)
            nll, _ = model(block[:, :7], block[:, 1:], memory, mem_len=mem_len)
            opt.zero_grad()
            nll.mean().backward()
            opt.step()
        return nll.mean().item()

    with_memory, without = train(8), train(0)
    assert with_memory < 0.5 * math.log(16) < without, (with_memory, without)


@pytest.mark.parametrize("cutoffs", [(), (10, 25)])
def test_runs_under_bf16_autocast(cutoffs):
    """The engine trains under bf16 autocast where asked (CPU included)."""
    model = make("bn", "pre", dtype=torch.float32, xl={"cutoffs": cutoffs}).train()
    toks = tokens()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        nll, memory = model(toks[:, :6], toks[:, 1:7])
        nll, memory = model(toks[:, 6:11], toks[:, 7:12], memory)
        lp, _ = model(toks[:, :4], memory=memory)
    nll.mean().backward()
    assert nll.dtype == torch.float32 and torch.isfinite(nll).all()
    assert lp.shape == (3, 4, VOCAB) and torch.isfinite(lp).all()


def test_full_softmax_is_tied_to_the_embedding_and_log_probs_are_normalised():
    model = make()
    assert model.out.weight is model.embed.tables[0].weight
    lp, _ = model(tokens())
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(3, 12, dtype=torch.float64))
    h, _ = model.hidden_states(tokens())
    want = F.log_softmax(h @ model.embed.tables[0].weight.T + model.out.bias, -1)
    torch.testing.assert_close(lp, want)


@pytest.mark.parametrize("n_step", [95, 100, 101, 109])
def test_full_segments_only_is_the_scripts_fixed_length_iterator(n_step):
    """``tail=False`` yields the segments of ``range(0, n_step - tgt_len, tgt_len)`` (LMOrderedIterator's
    get_fixlen_iter), each full; the default adds the last, shorter one."""
    stream = torch.arange(3 * n_step + 2)
    full = list(stream_segments(stream, 3, 10, tail=False))
    assert [s[0].shape for s in full] == [(3, 10)] * len(range(0, n_step - 10, 10))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full, stream_segments(stream, 3, 10), strict=False))
    with pytest.raises(ValueError, match="too short for batch_size=3 and full segments of 40"):
        list(stream_segments(torch.arange(90), 3, 40, tail=False))


def test_the_streaming_model_keeps_its_memory_in_its_state_dict_at_one_shape(tmp_path):
    """A memory shorter than mem_len (the first segments of an epoch) is stored left-padded, so step
    checkpoints can be averaged; loading it gives back exactly the memory that was kept."""
    from normlab.models.transformer_xl import StreamingTransformerXL
    from normlab.train.checkpoint import average_state_dicts

    torch.manual_seed(0)
    opts = ModelOptions(**TINY, norm="bn")
    model = StreamingTransformerXL(opts, VOCAB, {"mem_len": 8})
    fresh = StreamingTransformerXL(opts, VOCAB, {"mem_len": 8})
    ids = torch.arange(3)  # segment 0 of 3 rows
    _, memory = model(tokens(3, 5), tokens(3, 5, seed=2), model.carried_memory(ids))
    model.carry(memory, ids)
    state = model.state_dict()
    assert state["carried_states"].shape == (2, 3, 8, 16) and state["carried_position"].tolist() == [3, 3, 5]
    assert not state["carried_states"][:, :, :3].any()  # the padding
    fresh.load_state_dict(state)  # strict: the memory is not a registered buffer
    kept = fresh.carried_memory(torch.arange(3, 6))
    assert all(torch.equal(a, b) for a, b in zip(kept.states, memory.states, strict=True))
    assert "carried_states" not in dict(fresh.named_buffers())
    with pytest.raises(ValueError, match="no memory for the segments starting at id 9"):
        fresh.carried_memory(torch.arange(9, 12))
    paths = [tmp_path / "a.pt", tmp_path / "b.pt"]
    for path, m in zip(paths, (model, fresh), strict=True):
        torch.save({"model": m.state_dict()}, path)
    averaged = average_state_dicts(paths)
    assert averaged["carried_states"].shape == (2, 3, 8, 16)
    empty = StreamingTransformerXL(opts, VOCAB, {"mem_len": 8})
    empty.load_state_dict(StreamingTransformerXL(opts, VOCAB, {"mem_len": 8}).state_dict())
    assert empty.carried_memory(torch.arange(3)) is None  # segment 0 needs none
