"""Where the studied norm sits (norm_scope x norm_sites x final_norm) and how the weights start (init)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from normlab.models import build_model
from normlab.norms import AdaNorm, LayerNorm, NoNorm, RegularizedBatchNorm
from normlab.train import validate

TINY = dict(d_model=16, n_heads=2, d_ff=32, n_layers=2, n_decoder_layers=2, dropout=0.0)
MT_SIZES = dict(vocab_size=23, pad_id=0, bos_id=1, eos_id=2)


def translation(**opts):
    torch.manual_seed(0)
    return build_model("translation", {**TINY, **opts}, **MT_SIZES)


def norms_of(model: nn.Module) -> dict[str, type]:
    return {name: type(m) for name, m in model.named_modules() if name.endswith("norm")}


SUBLAYER = [f"{stack}.layers.{i}.{k}" for stack, kinds in (("encoder", ("attn_norm", "ffn_norm")),
                                                          ("decoder", ("attn_norm", "cross_norm", "ffn_norm")))
            for i in range(2) for k in kinds]
FINAL = ["encoder.final_norm", "decoder.final_norm"]


@pytest.mark.parametrize(("norm", "cls"), [("adanorm", AdaNorm), ("none", NoNorm), ("rbn", RegularizedBatchNorm)])
def test_the_papers_placement_puts_the_studied_norm_in_every_norm_of_encoder_and_decoder(norm, cls):
    types = norms_of(translation(norm=norm, placement="pre", norm_scope="all", norm_sites="every"))
    assert sorted(types) == sorted(SUBLAYER + FINAL)
    assert set(types.values()) == {cls}


def test_without_norm_in_the_papers_placement_no_layernorm_is_left():
    model = translation(norm="none", placement="pre", norm_scope="all", norm_sites="every")
    assert not [m for m in model.modules() if isinstance(m, LayerNorm | nn.LayerNorm)]
    post = translation(norm="none", placement="post", norm_scope="all", norm_sites="every")
    assert not [m for m in post.modules() if isinstance(m, LayerNorm | nn.LayerNorm)]


@pytest.mark.parametrize(("norm", "cls"), [("adanorm", AdaNorm), ("none", NoNorm)])
def test_the_released_codes_placement_changes_only_the_two_final_norms(norm, cls):
    types = norms_of(translation(norm=norm, placement="pre", norm_scope="all", norm_sites="final"))
    assert {name: types[name] for name in FINAL} == {name: cls for name in FINAL}
    assert {types[name] for name in SUBLAYER} == {LayerNorm}


def test_final_sites_on_one_stack_models_change_only_their_final_norm():
    torch.manual_seed(0)
    model = build_model("lm", {**TINY, "norm": "adanorm", "placement": "pre", "norm_sites": "final"},
                        vocab_size=23, pad_id=0)
    types = norms_of(model)
    assert types.pop("decoder.final_norm") is AdaNorm
    assert set(types.values()) == {LayerNorm}


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (dict(norm_sites="final", placement="post"), "model.norm_sites: 'final' puts the studied norm only in the "
                                                     "Pre-Norm final norms, and placement 'post' has none"),
        (dict(norm_sites="final", placement="pre", final_norm="ln"), "leaves the studied norm nowhere"),
        (dict(norm_sites="last"), "model.norm_sites: 'last' is not valid; valid values: every, final"),
        (dict(init="xavier"), "model.init: 'xavier' is not valid; valid values: torch, fairseq, rbn_fork"),
    ],
)
def test_bad_placement_or_init_options_name_the_problem(opts, message):
    with pytest.raises(ValueError) as err:
        translation(**opts)
    assert message in str(err.value)


def test_the_run_config_schema_takes_the_new_options_from_the_constants():
    cfg = validate({"task": "translation", "data": {"source": "synthetic"},
                    "model": {"norm_sites": "final", "placement": "pre", "init": "rbn_fork"}})
    assert (cfg["model"]["norm_sites"], cfg["model"]["init"]) == ("final", "rbn_fork")
    assert validate({"task": "lm", "data": {"source": "synthetic"}})["model"]["norm_sites"] == "every"
    from normlab.train.config import ConfigError
    with pytest.raises(ConfigError, match="model.norm_sites: 'final' puts"):
        validate({"task": "lm", "data": {"source": "synthetic"}, "model": {"norm_sites": "final"}})


# --- init -------------------------------------------------------------------------------------------

D, FF = 256, 512


def big(init, family="translation", **opts):
    torch.manual_seed(0)
    sizes = MT_SIZES if family == "translation" else dict(vocab_size=50, pad_id=0, n_classes=3)
    model = build_model(family, dict(d_model=D, n_heads=4, d_ff=FF, n_layers=1, n_decoder_layers=1, dropout=0.0,
                                     placement="pre", init=init, **opts), **sizes)
    return model.requires_grad_(False)  # only the initial values are read


def xavier_var(fan_in, fan_out, gain=1.0):
    return gain**2 * 2.0 / (fan_in + fan_out)


def torch_default_var(fan_in):
    return 1.0 / (3 * fan_in)  # U(-1/sqrt(fan_in), 1/sqrt(fan_in))


def assert_var(t: torch.Tensor, expected: float, rel=0.05):
    var = float(t.double().pow(2).mean())  # mean zero by construction: the second moment is the variance
    assert var == pytest.approx(expected, rel=rel), (var, expected)


def assert_uniform_bound(t: torch.Tensor, var: float):
    bound = math.sqrt(3 * var)
    assert float(t.abs().max()) <= bound * (1 + 1e-6)
    assert float(t.abs().max()) > 0.99 * bound


def assert_ffn(ffn, init: str):
    """fairseq: Xavier weights, zero biases; torch: nn.Linear's U(+-1/sqrt(fan_in)) weights and biases."""
    for linear, fan_in, fan_out in ((ffn.fc1, D, FF), (ffn.fc2, FF, D)):
        if init == "fairseq":
            assert_var(linear.weight, xavier_var(fan_in, fan_out))
            assert torch.count_nonzero(linear.bias) == 0
        else:
            assert_var(linear.weight, torch_default_var(fan_in))
            assert torch.count_nonzero(linear.bias) == fan_out


def test_fairseq_init_matches_fairseq_09_for_attention_ffn_and_embeddings():
    model = big("fairseq")
    for attn in (model.encoder.layers[0].self_attn, model.decoder.layers[0].self_attn,
                 model.decoder.layers[0].cross_attn):
        q_var = xavier_var(D, D, gain=1 / math.sqrt(2))  # = 1 / (2 D)
        for w in (attn.q_proj.weight, attn.kv_proj.weight[:D], attn.kv_proj.weight[D:]):  # q, k, v: D x D each
            assert_var(w, q_var)
            assert_uniform_bound(w, q_var)
        # q/k/v biases: fairseq 0.9 does not reset them, they keep nn.Linear's U(+-1/sqrt(D))
        for b in (attn.q_proj.bias, attn.kv_proj.bias):
            assert float(b.abs().min()) > 0 and float(b.abs().max()) <= 1 / math.sqrt(D)
            assert_var(b, torch_default_var(D), rel=0.3)
        assert_var(attn.out_proj.weight, xavier_var(D, D))
        assert torch.count_nonzero(attn.out_proj.bias) == 0
    for ffn in (model.encoder.layers[0].ffn, model.decoder.layers[0].ffn):
        assert_ffn(ffn, "fairseq")
    emb = model.embed.weight
    assert torch.count_nonzero(emb[0]) == 0  # the padding row
    assert float(emb[1:].std()) == pytest.approx(D**-0.5, rel=0.05)


def test_torch_init_keeps_pytorchs_defaults():
    model = big("torch")
    attn = model.encoder.layers[0].self_attn
    assert_var(attn.q_proj.weight, torch_default_var(D))
    assert_var(attn.out_proj.weight, torch_default_var(D))
    assert torch.count_nonzero(attn.out_proj.bias) == D
    assert_ffn(model.encoder.layers[0].ffn, "torch")
    assert_ffn(model.decoder.layers[0].ffn, "torch")
    assert float(model.embed.weight[1:].std()) == pytest.approx(D**-0.5, rel=0.05)  # every scheme


def test_rbn_fork_init_keeps_pytorchs_default_in_the_encoder_ffn_only():
    model = big("rbn_fork")
    # the RBN scripts' --encoder-fc1/2 nnlinear: at d 512 / FFN 1024, fc1 at half and fc2 at a quarter
    # of Xavier's weight variance, non-zero biases; the decoder keeps fairseq's Linear
    assert_ffn(model.encoder.layers[0].ffn, "torch")
    assert_ffn(model.decoder.layers[0].ffn, "fairseq")
    assert_var(model.encoder.layers[0].self_attn.q_proj.weight, xavier_var(D, D, 1 / math.sqrt(2)))


def test_fairseq_init_gives_task_heads_fairseqs_linear():
    head = big("fairseq", family="classification").head
    assert torch.count_nonzero(head.bias) == 0
    assert_var(head.weight, xavier_var(D, 3), rel=0.2)
    assert torch.count_nonzero(big("torch", family="classification").head.bias) == 3


def test_init_changes_only_the_weights_not_the_parameter_set():
    a, b = big("torch").state_dict(), big("fairseq").state_dict()
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
