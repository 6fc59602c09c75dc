"""Model families: where the norms sit, Post vs Pre, padding, causality, decoding."""

from __future__ import annotations

import pytest
import torch

from normlab.models import TransformerBlock, build_model
from normlab.models.blocks import BlockConfig, NormSpec
from normlab.norms import LayerNorm, MaskedBatchNorm, PowerNorm, RegularizedBatchNorm
from normlab.train import validate

TINY = dict(d_model=16, n_heads=2, d_ff=32, n_layers=2, dropout=0.0)
TEXT = dict(vocab_size=23, pad_id=0)
SIZES = {
    "translation": dict(TEXT, bos_id=1, eos_id=2),
    "lm": TEXT,
    "classification": dict(TEXT, n_classes=3),
    "tagging": dict(TEXT, n_labels=4),
    "image": dict(image_size=8, channels=1, n_classes=3),
}


def make(family, seed=0, **opts):
    torch.manual_seed(seed)
    return build_model(family, {**TINY, **opts}, **SIZES[family])


def norm_types(module):
    return {name: type(m) for name, m in module.named_modules() if name.endswith("norm")}


def padded_tokens(seed=0, b=4, t=7):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(3, 23, (b, t), generator=g)
    lengths = torch.tensor([t, t - 2, 3, 5])[:b]
    pad = torch.arange(t)[None, :] >= lengths[:, None]
    return tokens.masked_fill(pad, 0), pad


def run(model, family, tokens, pad):
    if family == "translation":
        return model(tokens, pad, tokens, pad)
    return model(tokens, pad)


def test_encoder_scope_puts_the_studied_norm_in_the_encoder_only():
    model = make("translation", norm="bn", norm_scope="encoder", placement="pre", final_norm="ln")
    enc, dec = norm_types(model.encoder), norm_types(model.decoder)
    assert [n for n, t in enc.items() if t is MaskedBatchNorm] == [
        f"layers.{i}.{k}" for i in range(2) for k in ("attn_norm", "ffn_norm")
    ]
    assert enc["final_norm"] is LayerNorm  # the RBN code's LN final encoder norm
    assert set(dec.values()) == {LayerNorm} and len(dec) == 2 * 3 + 1  # attn, cross, ffn per layer + final


def test_all_scope_and_same_final_norm_put_the_studied_norm_everywhere():
    model = make("translation", norm="rbn", norm_scope="all", placement="pre")
    types = norm_types(model)
    assert len(types) == 2 * 2 + 1 + 2 * 3 + 1
    assert set(types.values()) == {RegularizedBatchNorm}


def test_post_norm_has_no_final_norm_and_otherwise_the_same_parameters_as_pre():
    post = make("lm", placement="post").state_dict()
    pre = make("lm", placement="pre").state_dict()
    extra = set(pre) - set(post)
    assert extra == {"decoder.final_norm.weight", "decoder.final_norm.bias"}
    assert set(post) < set(pre)
    for k in post:  # same seed, same construction order: identical initial weights
        assert torch.equal(post[k], pre[k]), k


@pytest.mark.parametrize("placement", ["post", "pre"])
def test_block_computes_the_placement_formula(placement):
    torch.manual_seed(0)
    cfg = BlockConfig(16, 2, 32, dropout=0.0, placement=placement)
    block = TransformerBlock(cfg, NormSpec("ln"))
    with torch.no_grad():  # make the gains non-trivial so a misplaced norm shows
        for norm in (block.attn_norm, block.ffn_norm):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 5, 16)
    attn = lambda h: block.self_attn(h)  # noqa: E731
    if placement == "post":
        h = block.attn_norm(x + attn(x))
        expected = block.ffn_norm(h + block.ffn(h))
    else:
        h = x + attn(block.attn_norm(x))
        expected = h + block.ffn(block.ffn_norm(h))
    torch.testing.assert_close(block(x), expected)


def test_powernorm_gets_heads_as_groups_and_the_lr_warmup():
    """The run config fills these defaults in (normlab.train.config); the model builds what it states."""
    cfg = validate({"task": "classification", "data": {"source": "synthetic"},
                    "model": {**TINY, "norm": "powernorm"}, "optim": {"warmup_steps": 123}})
    model = make("classification", norm="powernorm", norm_options=cfg["model"]["norm_options"])
    pns = [m for m in model.modules() if isinstance(m, PowerNorm)]
    assert pns and all(m.groups == 2 and m.warmup_iters == 123 for m in pns)


@pytest.mark.parametrize("family", ["translation", "lm", "classification", "tagging"])
@pytest.mark.parametrize("norm", ["bn", "powernorm"])
def test_padding_never_changes_outputs_in_training_mode(family, norm):
    """Every norm receives the pad mask: appending padding leaves the non-pad outputs unchanged."""
    model = make(family, norm=norm, placement="pre").train()
    tokens, pad = padded_tokens()
    more_tokens = torch.cat([tokens, torch.zeros(4, 3, dtype=torch.long)], 1)
    more_pad = torch.cat([pad, torch.ones(4, 3, dtype=torch.bool)], 1)
    short = run(model, family, tokens, pad)
    long = run(model, family, more_tokens, more_pad)
    if family in ("classification",):
        torch.testing.assert_close(short, long)
    else:
        keep = ~pad
        torch.testing.assert_close(short[keep], long[:, : tokens.shape[1]][keep])


def test_language_model_is_causal():
    model = make("lm", norm="ln").eval()
    tokens, _ = padded_tokens()
    changed = tokens.clone()
    changed[:, 4:] = 5
    torch.testing.assert_close(model(tokens)[:, :4], model(changed)[:, :4])


def test_vit_runs_without_padding():
    model = make("image", norm="bn")
    assert model(torch.randn(5, 1, 8, 8)).shape == (5, 3)


@pytest.mark.parametrize("norm", ["ln", "bn"])
def test_beam_one_is_greedy(norm):
    model = make("translation", norm=norm, dropout=0.0)
    # a few steps of training on copying so decoding is not degenerate
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    tokens, pad = padded_tokens(seed=1)
    prev = torch.cat([torch.ones(4, 1, dtype=torch.long), tokens[:, :-1]], 1)
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(model(tokens, pad, prev, pad)[~pad], tokens[~pad])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    greedy = model.greedy(tokens, pad, max_len_b=8)
    assert greedy == model.beam_search(tokens, pad, beam=1, max_len_b=8)
    wide = model.beam_search(tokens, pad, beam=4, max_len_b=8)
    assert len(wide) == 4 and all(0 not in hyp and 1 not in hyp for hyp in wide)


def test_beam_search_finds_a_better_scoring_hypothesis_than_greedy_or_equal():
    model = make("translation", norm="ln").eval()
    tokens, pad = padded_tokens(seed=2)

    def log_prob(i, hyp):
        src, spad = tokens[i : i + 1], pad[i : i + 1]
        seq = torch.tensor([[1, *hyp, 2]])
        logp = model(src, spad, seq[:, :-1], None).log_softmax(-1)
        return logp[0, torch.arange(len(hyp) + 1), seq[0, 1:]].sum().item()

    greedy = model.greedy(tokens, pad, max_len_b=6)
    beam = model.beam_search(tokens, pad, beam=5, lenpen=0.0, max_len_b=6)
    for i in range(4):
        if len(greedy[i]) < 6 + 7 and len(beam[i]) < 6 + 7:  # both finished with EOS
            assert log_prob(i, beam[i]) >= log_prob(i, greedy[i]) - 1e-5


def test_bad_options_name_the_valid_values():
    with pytest.raises(ValueError, match="norm_scope.*valid values: all, encoder"):
        make("lm", norm_scope="encoder")
    with pytest.raises(ValueError, match="model.norm.*valid values: ln"):
        make("lm", norm="batchnorm")
    with pytest.raises(ValueError, match="placement.*post, pre"):
        make("tagging", placement="middle")
    with pytest.raises(ValueError, match="valid families"):
        build_model("speech", TINY)
