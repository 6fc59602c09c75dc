"""Linear-chain CRF (against brute-force enumeration), tag-scheme constraints, the CRF tagger, CharCNN."""

from __future__ import annotations

import itertools

import pytest
import torch

from normlab.models.crf import LinearChainCRF, allowed_transitions
from normlab.models.crf_tagger import CharCNN, CRFTagger, char_ids, char_vocabulary
from normlab.models.options import ModelOptions
from normlab.norms import NORMS, MaskedBatchNorm, RegularizedBatchNorm, regularization_loss

IOB2 = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
BIOES = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]


def crf_and_batch(n_tags=3, lengths=(4, 2, 3, 1), t=4, seed=0, allowed=None):
    torch.manual_seed(seed)
    crf = LinearChainCRF(n_tags, allowed).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    e = torch.randn(len(lengths), t, n_tags, dtype=torch.float64)
    pad = torch.arange(t)[None] >= torch.tensor(lengths)[:, None]
    tags = torch.randint(0, n_tags, (len(lengths), t))
    return crf, e, pad, tags


def brute_force_score(crf, e_row, seq):
    s = crf.start[seq[0]] + e_row[0, seq[0]] + crf.end[seq[-1]]
    for i in range(1, len(seq)):
        s = s + crf.transitions[seq[i - 1], seq[i]] + e_row[i, seq[i]]
    return s


def test_log_partition_score_and_viterbi_equal_brute_force_enumeration():
    crf, e, pad, tags = crf_and_batch()
    log_z, score = crf.log_partition(e, pad), crf.score(e, tags, pad)
    paths, best = crf.decode(e, pad)
    for b, n in enumerate((~pad).sum(1).tolist()):
        seqs = list(itertools.product(range(3), repeat=n))
        scores = torch.stack([brute_force_score(crf, e[b], s) for s in seqs])
        torch.testing.assert_close(log_z[b], torch.logsumexp(scores, 0))
        torch.testing.assert_close(score[b], brute_force_score(crf, e[b], tags[b, :n].tolist()))
        k = int(scores.argmax())
        assert paths[b, :n].tolist() == list(seqs[k]) and paths[b, n:].eq(0).all()
        torch.testing.assert_close(best[b], scores[k])
        # normalised: the probabilities of all tag sequences of the sentence sum to one
        probs = torch.stack([(-crf.nll(e[b : b + 1, :n], torch.tensor([s]))).exp() for s in seqs])
        torch.testing.assert_close(probs.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_padding_changes_neither_likelihood_nor_path():
    crf, e, pad, tags = crf_and_batch(n_tags=4, lengths=(5, 2, 3), t=5)
    nll, (paths, best) = crf.nll(e, tags, pad), crf.decode(e, pad)
    garbage = e.masked_fill(pad[..., None], 0.0) + 50.0 * torch.randn_like(e) * pad[..., None]
    torch.testing.assert_close(crf.nll(garbage, tags.masked_fill(pad, 3), pad), nll)
    assert crf.decode(garbage, pad)[0].equal(paths)
    for b, n in enumerate((~pad).sum(1).tolist()):  # each sentence alone, unpadded
        torch.testing.assert_close(crf.nll(e[b : b + 1, :n], tags[b : b + 1, :n])[0], nll[b])
        alone_path, alone_best = crf.decode(e[b : b + 1, :n])
        assert alone_path[0].tolist() == paths[b, :n].tolist()
        torch.testing.assert_close(alone_best[0], best[b])


def test_marginals_from_the_gradient_of_log_z_sum_to_one_per_real_token():
    crf, e, pad, _ = crf_and_batch(n_tags=4, lengths=(4, 2, 3), t=4)
    e.requires_grad_()
    crf.log_partition(e, pad).sum().backward()
    torch.testing.assert_close(e.grad.sum(-1), (~pad).double())


def test_empty_sentence_has_zero_loss():
    crf, e, _, tags = crf_and_batch(lengths=(3, 0), t=3)
    pad = torch.tensor([[False] * 3, [True] * 3])
    nll = crf.nll(e, tags, pad)
    assert nll[1] == 0 and nll[0] > 0


def test_iob2_constraints():
    a = allowed_transitions(IOB2, "iob2")
    idx = {t: i for i, t in enumerate(IOB2)}
    start, end = len(IOB2), len(IOB2) + 1
    assert not a[idx["O"], idx["I-PER"]] and not a[start, idx["I-PER"]] and not a[idx["B-LOC"], idx["I-PER"]]
    assert a[idx["B-PER"], idx["I-PER"]] and a[idx["I-PER"], idx["I-PER"]] and a[idx["I-PER"], idx["B-PER"]]
    assert a[:end, end][: len(IOB2)].all() and a[start, idx["B-LOC"]] and not a[:, start].any()


def test_bioes_and_bmes_constraints():
    a = allowed_transitions(BIOES, "bioes")
    idx = {t: i for i, t in enumerate(BIOES)}
    start, end = len(BIOES), len(BIOES) + 1
    assert a[idx["B-PER"], idx["I-PER"]] and a[idx["B-PER"], idx["E-PER"]] and a[idx["I-PER"], idx["E-PER"]]
    for bad in [("B-PER", "O"), ("B-PER", "E-LOC"), ("I-PER", "B-PER"), ("O", "I-PER"), ("E-PER", "E-PER")]:
        assert not a[idx[bad[0]], idx[bad[1]]], bad
    assert not a[idx["B-PER"], end] and a[idx["E-PER"], end] and a[idx["S-LOC"], end]
    assert a[start, idx["S-PER"]] and not a[start, idx["E-PER"]]
    bmes = [t.replace("I-", "M-") for t in BIOES]
    assert allowed_transitions(bmes, "bmes").equal(a)
    with pytest.raises(ValueError, match="bioes"):
        allowed_transitions(["O", "X-PER"], "bioes")
    with pytest.raises(ValueError, match="unknown tag scheme"):
        allowed_transitions(IOB2, "bilou")


def test_constrained_viterbi_is_the_best_allowed_sequence():
    allowed = allowed_transitions(IOB2, "iob2")
    crf, e, pad, _ = crf_and_batch(n_tags=5, lengths=(4, 3), t=4, allowed=allowed, seed=3)
    paths, best = crf.decode(e, pad)
    n_tags, start, end = 5, 5, 6

    def ok(seq):
        return (
            allowed[start, seq[0]] and allowed[seq[-1], end] and all(allowed[a, b] for a, b in itertools.pairwise(seq))
        )

    for b, n in enumerate((~pad).sum(1).tolist()):
        seqs = [s for s in itertools.product(range(n_tags), repeat=n) if ok(s)]
        scores = torch.stack([brute_force_score(crf, e[b], s) for s in seqs])
        assert paths[b, :n].tolist() == list(seqs[int(scores.argmax())])
        torch.testing.assert_close(best[b], scores.max())
    unconstrained = LinearChainCRF(5).double()
    unconstrained.load_state_dict({k: v for k, v in crf.state_dict().items() if k != "allowed"})
    assert not unconstrained.decode(e, pad)[0].equal(paths)  # the constraints did something here


def test_char_vocabulary_and_ids():
    vocab = char_vocabulary(["aab", "bc", "d"], min_freq=2)
    assert vocab == {"a": 2, "b": 3}
    ids = char_ids([["ab", "c"], ["bbb"]], vocab)
    assert ids.tolist() == [[[2, 3, 0], [1, 0, 0]], [[3, 3, 3], [0, 0, 0]]]
    assert char_ids([["abcd"]], vocab, max_word_len=2).shape == (1, 1, 2)


def test_char_cnn_max_pools_over_real_characters_only():
    cnn = CharCNN(10, char_dim=4, filters=5, kernel=3, out_dim=6, dropout=0.0)
    chars = torch.tensor([[[2, 3, 4, 0, 0], [0, 0, 0, 0, 0]]])
    out = cnn(chars)
    assert out.shape == (1, 2, 6)
    torch.testing.assert_close(out[0, 1], cnn.fc.bias)  # a token without characters: zero features
    with torch.no_grad():
        cnn.embed.weight[0] = 100.0  # the padding character's vector never reaches a real word...
    torch.testing.assert_close(cnn(torch.tensor([[[2, 3, 4]]]))[0, 0], out[0, 0])  # ...nor does its length
    with pytest.raises(ValueError, match="odd"):
        CharCNN(10, kernel=2)


TINY = dict(d_model=16, n_heads=2, d_ff=32, n_layers=2, dropout=0.0)


def tagger(norm="ln", placement="post", chars=True, **kw):
    torch.manual_seed(0)
    opts = ModelOptions(**TINY, norm=norm, placement=placement)
    return CRFTagger(
        opts,
        30,
        0,
        len(BIOES),
        label_names=BIOES,
        tag_scheme="bioes",
        n_chars=12 if chars else 0,
        char_options={"char_dim": 4, "filters": 6, "out_dim": 5, "dropout": 0.0} if chars else None,
        **kw,
    )


def tagging_batch(b=4, t=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    pad = torch.arange(t)[None] >= torch.tensor([t, 5, 3, 6][:b])[:, None]
    toks = torch.randint(1, 30, (b, t), generator=g).masked_fill(pad, 0)
    tags = torch.randint(0, len(BIOES), (b, t), generator=g).masked_fill(pad, -100)
    chars = torch.randint(1, 12, (b, t, 4), generator=g).masked_fill(pad[..., None], 0)
    return toks, tags, pad, chars


@pytest.mark.parametrize("placement", ["post", "pre"])
@pytest.mark.parametrize("norm", list(NORMS))
def test_crf_tagger_trains_and_decodes_with_every_norm_and_placement(norm, placement):
    model = tagger(norm, placement).train()
    toks, tags, pad, chars = tagging_batch()
    loss = model.loss(toks, tags, pad, chars)
    (loss + regularization_loss(model, toks.shape[0])).backward()
    assert torch.isfinite(loss)
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    model.eval()
    paths = model.decode(toks, pad, chars)
    assert paths.shape == toks.shape and paths[pad].eq(0).all()
    allowed = model.crf.allowed
    for row, n in zip(paths.tolist(), (~pad).sum(1).tolist(), strict=True):
        assert all(allowed[a, b] for a, b in itertools.pairwise(row[:n]))
        assert allowed[len(BIOES), row[0]] and allowed[row[n - 1], len(BIOES) + 1]


def test_crf_tagger_loss_is_the_mean_sentence_nll():
    model = tagger().eval()
    toks, tags, pad, chars = tagging_batch()
    per_sentence = model.loss(toks, tags, pad, chars, reduction="none")
    assert per_sentence.shape == (4,)
    torch.testing.assert_close(model.loss(toks, tags, pad, chars), per_sentence.mean())
    torch.testing.assert_close(model.loss(toks, tags, pad, chars, reduction="sum"), per_sentence.sum())
    emissions = model(toks, pad, chars)
    torch.testing.assert_close(emissions.exp().sum(-1), torch.ones(4, 7))  # log-softmaxed, as TENER


@pytest.mark.parametrize("norm", ["bn", "rbn"])
def test_crf_tagger_padding_changes_no_loss_path_or_statistic(norm):
    """Training mode: the same sentences padded to a longer length, with garbage in the padding."""
    a, b = tagger(norm), tagger(norm)
    b.load_state_dict(a.state_dict())
    toks, tags, pad, chars = tagging_batch()
    extra = 3
    pad2 = torch.cat([pad, torch.ones(4, extra, dtype=torch.bool)], 1)
    toks2 = torch.cat([toks, torch.randint(1, 30, (4, extra))], 1).masked_scatter(pad2, torch.randint(1, 30, (40,)))
    tags2 = torch.cat([tags, torch.zeros(4, extra, dtype=torch.long)], 1)
    chars2 = torch.cat([chars, torch.randint(1, 12, (4, extra, 4))], 1)
    la, lb = a.train().loss(toks, tags, pad, chars), b.train().loss(toks2, tags2, pad2, chars2)
    torch.testing.assert_close(lb, la)
    for na, nb in zip(
        [m for m in a.modules() if isinstance(m, MaskedBatchNorm)],
        [m for m in b.modules() if isinstance(m, MaskedBatchNorm)],
        strict=True,
    ):
        torch.testing.assert_close(nb.running_var, na.running_var)
        if isinstance(na, RegularizedBatchNorm):
            torch.testing.assert_close(nb.penalty(), na.penalty())
    a.eval(), b.eval()
    assert b.decode(toks2, pad2, chars2)[:, :7].equal(a.decode(toks, pad, chars))


def test_crf_tagger_argument_checks_and_word_dropout():
    with pytest.raises(ValueError, match="both label_names and tag_scheme"):
        CRFTagger(ModelOptions(**TINY), 30, 0, 9, label_names=BIOES)
    with pytest.raises(ValueError, match="unk_id"):
        tagger(word_dropout=0.1)
    model = tagger(chars=False)
    toks, tags, pad, chars = tagging_batch()
    with pytest.raises(ValueError, match="chars must be given"):
        model(toks, pad, chars)
    dropped = tagger(chars=False, word_dropout=0.999, unk_id=1).train()
    seen = []
    dropped.embed.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    dropped(toks, pad)
    assert seen[0][~pad].eq(1).all() and seen[0][pad].eq(0).all()  # padding is never "dropped" to <unk>


def test_crf_tagger_learns_a_tagging_rule_beyond_the_all_o_baseline():
    """Tokens 1-9 are O, 10-19 begin a PER span continued by 20-29: a rule that needs transitions
    (the CRF's) to be decoded in BIOES.  Sixty steps bring token accuracy near 1."""
    torch.manual_seed(0)
    model = CRFTagger(ModelOptions(**TINY), 30, 0, len(BIOES), label_names=BIOES, tag_scheme="bioes")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)

    def sample(n=32, t=8):
        kinds = torch.randint(0, 3, (n, t), generator=g)  # 0 O, 1 single, 2 two-token span
        toks, tags = [], []
        for row in kinds.tolist():
            tk, tg = [], []
            for k in row:
                if k == 0:
                    tk.append(int(torch.randint(1, 10, (1,), generator=g))), tg.append(0)
                elif k == 1:
                    tk.append(int(torch.randint(10, 20, (1,), generator=g))), tg.append(4)
                else:
                    tk += [int(torch.randint(10, 20, (1,), generator=g)), int(torch.randint(20, 30, (1,), generator=g))]
                    tg += [1, 3]
            toks.append(tk[:t]), tags.append(tg[:t])
        toks, tags = torch.tensor(toks), torch.tensor(tags)
        # a span cut at the end of the sentence: make its B a single S
        cut = tags[:, -1].eq(1)
        tags[cut, -1] = 4
        return toks, tags

    for _ in range(60):
        toks, tags = sample()
        loss = model.loss(toks, tags)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    toks, tags = sample(200)
    accuracy = model.decode(toks).eq(tags).double().mean().item()
    all_o = tags.eq(0).double().mean().item()
    assert accuracy > 0.95 > all_o + 0.3, (accuracy, all_o)


def test_crf_tagger_runs_under_bf16_autocast():
    model = tagger("rbn").train()
    toks, tags, pad, chars = tagging_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.loss(toks, tags, pad, chars)
        paths = model.decode(toks, pad, chars)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and paths.shape == toks.shape
