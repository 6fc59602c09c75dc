"""TID measures: both forms against hand computation, the online recorder, the frozen forwards and the offline probe."""

import copy
import math

import pytest
import torch
from torch import nn

from normlab.norms import batch_stats_inference, build_norm
from normlab.tid import (
    TID_KINDS,
    OnlineTIDRecorder,
    describe_module,
    frozen,
    normalises_with_running,
    probe_tid,
    tid_from_statistics,
)


def test_tid_forms_by_hand():
    batch_mean, batch_var = torch.tensor([1.0, 0.0]), torch.tensor([4.0, 1.0])
    running_mean, running_var = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0])
    values = dict(zip(TID_KINDS, tid_from_statistics(batch_mean, batch_var, running_mean, running_var).tolist(),
                      strict=True))
    # paper: ‖μ_B − μ̂‖/‖σ̂‖ = 1/√2 ; ‖σ_B − σ̂‖/‖σ̂‖ = ‖(2−1, 0)‖/√2 = 1/√2
    assert math.isclose(values["mean_tid"], 1 / math.sqrt(2), rel_tol=1e-6)
    assert math.isclose(values["var_tid"], 1 / math.sqrt(2), rel_tol=1e-6)
    # per channel: mean(|μ̂ − μ_B|/σ_B) = (1/2 + 0)/2 ; mean(|σ̂/σ_B − 1|) = (1/2 + 0)/2
    assert math.isclose(values["mean_tid_channel"], 0.25, rel_tol=1e-6)
    assert math.isclose(values["var_tid_channel"], 0.25, rel_tol=1e-6)
    no_mean = tid_from_statistics(None, batch_var, None, running_var)
    assert math.isnan(no_mean[0]) and math.isclose(float(no_mean[1]), 1 / math.sqrt(2), rel_tol=1e-6)


def test_describe_module():
    assert describe_module("encoder.layers.3.attn_norm") == (3, "attn_norm")
    assert describe_module("final_norm") == (None, "final_norm")


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleDict({"proj": nn.Linear(8, 8), "norm": build_norm(name, 8, **opts)})
            for name, opts in [("bn", {}), ("powernorm", {"warmup_iters": 1})]
        )

    def forward(self, x, pad=None):
        for layer in self.layers:
            x = layer["norm"](layer["proj"](x), pad)
        return x


def test_online_recorder_equals_the_statistics_it_saw():
    model, recorder = TwoLayers(), None
    recorder = OnlineTIDRecorder(model)
    expected = []
    for step in range(3):
        model(torch.randn(4, 6, 8) + 1)
        recorder.record(step)
        bn = model.layers[0]["norm"]
        expected.append(tid_from_statistics(bn.batch_mean, bn.batch_var, bn.running_mean, bn.running_var))
    rows = recorder.flush()
    assert recorder.flush() == []  # flushed once
    bn_rows = [r for r in rows if r["module"] == "layers.0.norm"]
    assert {(r["layer"], r["position"], r["method"]) for r in bn_rows} == {(0, "norm", "online")}
    for step in range(3):
        got = {r["kind"]: r["value"] for r in bn_rows if r["step"] == step}
        assert list(got) == list(TID_KINDS)
        torch.testing.assert_close(torch.tensor([got[k] for k in TID_KINDS]), expected[step])
    pn_kinds = {r["kind"] for r in rows if r["module"] == "layers.1.norm"}
    assert pn_kinds == {"var_tid", "var_tid_channel"}  # PowerNorm has no mean


def test_probe_freezes_the_model_and_averages_over_batches():
    model = TwoLayers()
    for _ in range(5):
        model(torch.randn(4, 6, 8) * 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [torch.randn(4, 6, 8) * 3 for _ in range(4)]
    rows = probe_tid(model, batches, lambda b: model(b), step=7)
    assert model.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], msg=f"probe changed {k}")
    # reference: each batch's statistics at the BN layer's input, vs the running statistics
    bn = model.layers[0]["norm"]
    per_batch = []
    with torch.no_grad():
        for b in batches:
            h = model.layers[0]["proj"](b).reshape(-1, 8)
            per_batch.append(tid_from_statistics(h.mean(0), h.var(0, unbiased=False), bn.running_mean,
                                                 bn.running_var))
    per_batch = torch.stack(per_batch)
    got = {r["kind"]: r for r in rows if r["module"] == "layers.0.norm"}
    for i, kind in enumerate(TID_KINDS):
        assert got[kind]["step"] == 7 and got[kind]["n_batches"] == 4 and got[kind]["method"] == "probe"
        assert got[kind]["probe_mode"] == "train"
        assert math.isclose(got[kind]["value"], float(per_batch[:, i].mean()), rel_tol=1e-4)
        assert math.isclose(got[kind]["std"], float(per_batch[:, i].std()), rel_tol=1e-3)


def test_models_without_batch_statistics_record_nothing():
    model = nn.Sequential(nn.Linear(4, 4))
    assert not OnlineTIDRecorder(model)
    assert probe_tid(model, [torch.randn(2, 4)], model) == []


class DropoutLayers(nn.Module):
    """Linear -> Dropout -> BN, then Linear -> Dropout -> PowerNorm (warm-up of 2 steps)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleDict({"proj": nn.Linear(8, 8), "drop": nn.Dropout(0.3), "norm": build_norm(name, 8, **opts)})
            for name, opts in [("bn", {}), ("powernorm", {"warmup_iters": 2})]
        )

    def forward(self, x, pad=None):
        for layer in self.layers:
            x = layer["norm"](layer["drop"](layer["proj"](x)), pad)
        return x


@pytest.mark.parametrize("trained_steps", [1, 4])  # PowerNorm within, then past its warm-up
def test_frozen_train_mode_is_the_training_forward_without_its_updates(trained_steps):
    model = DropoutLayers()
    for _ in range(trained_steps):
        model(torch.randn(4, 6, 8) + 1)
    pn = model.layers[1]["norm"]
    assert normalises_with_running(pn) == (trained_steps >= 2)
    x = torch.randn(4, 6, 8) + 1
    pad = torch.zeros(4, 6, dtype=torch.bool)
    pad[:2, -2:] = True
    reference = copy.deepcopy(model)  # plain training forward: same masks from the same seed
    torch.manual_seed(3)
    with torch.no_grad():
        expected = reference(x, pad)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    model.layers[0]["drop"].eval()  # a module's own mode survives the block
    with frozen(model, "train", seed=3):
        got = model(x, pad)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(pn.batch_var, reference.layers[1]["norm"].batch_var)  # ψ_B as training has it
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], msg=f"frozen forward changed {k}")
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's generator is untouched
    assert model.training and not model.layers[0]["drop"].training and model.layers[1]["drop"].training
    assert not any(layer["norm"].eval_with_batch_stats for layer in model.layers)
    assert not pn._forward_pre_hooks  # its statistic hook is gone


def test_frozen_eval_mode_has_no_dropout_and_batch_statistics_everywhere():
    model = DropoutLayers()
    for _ in range(4):
        model(torch.randn(4, 6, 8) + 1)
    x = torch.randn(4, 6, 8) + 1
    reference = copy.deepcopy(model).eval()
    with torch.no_grad(), batch_stats_inference(reference):
        expected = reference(x)
    with frozen(model, "eval"):
        torch.testing.assert_close(model(x), expected)
        torch.testing.assert_close(model(x), expected)  # no dropout: the same output twice
    with frozen(model, "train", seed=0):
        assert not torch.allclose(model(x), expected)  # dropout on
    with pytest.raises(ValueError, match="probe mode"):
        with frozen(model, "inference"):
            pass
