"""normlab probe: the TID decomposition on planted cases with known answers, conditioning against a
hand-made spectrum, and the command on trained runs (synthetic, diverged, not a run, real data)."""

from __future__ import annotations

import json
import math
import os

import pandas as pd
import pytest
import torch
from torch import nn

from normlab.analysis.probes import FILES, condition_numbers, decompose, probe_run
from normlab.cli import main
from normlab.norms import batch_stats_inference, build_norm
from normlab.train import train

D = 32  # channels of the planted cases


class OneNorm(nn.Module):
    """A single norm fed the batch as it is: its input statistics are whatever the test plants."""

    def __init__(self, name: str, dim: int = D):
        super().__init__()
        self.norm = build_norm(name, dim)

    def forward(self, batch):
        x, pad = batch
        return self.norm(x, pad)


def gaussian_batches(n, gen, shift_scale=0.0, sentences=8, length=32, dim=D):
    """i.i.d. N(0, 1) tokens (+ a shift shared by every token of a batch); the last 4 positions of
    half the sentences are padding holding huge values, which must never reach a statistic."""
    out = []
    for _ in range(n):
        x = torch.randn(sentences, length, dim, generator=gen)
        x += shift_scale * torch.randn(dim, generator=gen)
        pad = torch.zeros(sentences, length, dtype=torch.bool)
        pad[: sentences // 2, -4:] = True
        out.append((x.masked_fill(pad[..., None], 1e4), pad))
    return out


TOKENS = 8 * 32 - 4 * 4  # non-pad tokens per planted batch


def table(result) -> pd.DataFrame:
    return pd.DataFrame(result.tid).set_index(["kind", "component"])


def run_planted(model, real, population, **kw):
    return decompose(model, lambda b: model(b), real, population, **kw)


def test_iid_tokens_sit_at_the_theoretical_floor_and_have_no_structure():
    gen = torch.Generator().manual_seed(1)
    model = OneNorm("bn")
    result = run_planted(model, gaussian_batches(48, gen), gaussian_batches(150, gen))
    t = table(result)
    floor_mean, floor_var = t.loc[("mean_tid", "floor"), "value"], t.loc[("var_tid", "floor"), "value"]
    assert t.loc[("mean_tid", "floor_theory"), "value"] == pytest.approx(1 / math.sqrt(TOKENS))
    # E‖μ_B − μ‖/‖σ‖ = 1/√N up to E[χ_D]/√D ≈ 1 − 1/(4D); ‖σ_B − σ‖/‖σ‖ ≈ 1/√(2N) for Gaussian tokens
    assert floor_mean == pytest.approx(1 / math.sqrt(TOKENS), rel=0.08)
    assert floor_var == pytest.approx(1 / math.sqrt(2 * TOKENS), rel=0.12)
    # the real batches are i.i.d. too: same size as the floor, nothing left for batch structure
    for kind, floor in (("mean_tid", floor_mean), ("var_tid", floor_var)):
        assert abs(t.loc[(kind, "structure"), "value"]) < 0.15 * floor
        assert t.loc[(kind, "batch_vs_population"), "value"] == pytest.approx(floor, rel=0.15)
    rows = t.reset_index()
    assert set(rows["n_batches"][rows.component != "lag"]) == {48}
    assert set(rows["tokens_per_batch"].dropna()) == {TOKENS}
    assert set(rows["population_tokens"]) == {(48 + 150) * TOKENS}
    assert set(rows["method"]) == {"batch_stats"}


def test_planted_batch_structure_shows_as_structure_not_floor():
    gen = torch.Generator().manual_seed(2)
    model = OneNorm("bn")
    # every token of a batch shares a shift ~ N(0, 0.5²): batch means far beyond the i.i.d. floor
    result = run_planted(model, gaussian_batches(16, gen, 0.5), gaussian_batches(150, gen, 0.5))
    t = table(result)
    floor = t.loc[("mean_tid", "floor"), "value"]
    assert floor == pytest.approx(1 / math.sqrt(TOKENS), rel=0.15)
    # ‖μ_B − μ*‖/‖σ*‖ ≈ √(0.25 + 1/N)/√1.25 ≈ 0.46
    assert t.loc[("mean_tid", "batch_vs_population"), "value"] == pytest.approx(0.46, rel=0.2)
    assert t.loc[("mean_tid", "structure"), "value"] > 5 * floor


def population_statistics(batches):
    tokens = torch.cat([x[~pad] for x, pad in batches]).double()
    return tokens.mean(0), tokens.var(0, correction=0)


def test_lag_is_zero_when_running_statistics_equal_the_population_and_exact_when_planted():
    gen = torch.Generator().manual_seed(3)
    real, population = gaussian_batches(4, gen, 0.3), gaussian_batches(20, gen, 0.3)
    mean, var = population_statistics(real + population)
    model = OneNorm("bn")
    model.norm.running_mean.copy_(mean)
    model.norm.running_var.copy_(var)
    t = table(run_planted(model, real, population))
    assert t.loc[("mean_tid", "lag"), "value"] < 1e-6
    assert t.loc[("var_tid", "lag"), "value"] < 1e-6
    # planted: running mean off by δ, running std twice the population's
    delta = torch.linspace(-1, 1, D, dtype=torch.float64)
    model.norm.running_mean.copy_(mean + delta)
    model.norm.running_var.copy_(4 * var)
    t = table(run_planted(model, real, population))
    sigma = var.sqrt()
    assert t.loc[("mean_tid", "lag"), "value"] == pytest.approx(float(delta.norm() / sigma.norm()), rel=1e-5)
    assert t.loc[("var_tid", "lag"), "value"] == pytest.approx(1.0, rel=1e-5)
    # observed is the paper's TID against these (now wrong) running statistics: far above the floor
    assert t.loc[("mean_tid", "observed"), "value"] > 3 * t.loc[("mean_tid", "floor"), "value"]


def test_powernorm_has_only_variance_kinds_on_the_quadratic_mean():
    gen = torch.Generator().manual_seed(4)
    model = OneNorm("pn_vanilla")
    real, population = gaussian_batches(8, gen), gaussian_batches(40, gen)
    phi = torch.cat([x[~pad] for x, pad in real + population]).double().square().mean(0)
    model.norm.running_phi.copy_(phi)
    t = table(run_planted(model, real, population))
    assert set(t.index.get_level_values("kind")) == {"var_tid"}
    assert t.loc[("var_tid", "lag"), "value"] < 1e-6
    # √ψ_B of N(0,1) tokens: ‖√ψ_B − 1‖/‖1‖ ≈ 1/√(2N), as for the variance
    assert t.loc[("var_tid", "floor"), "value"] == pytest.approx(1 / math.sqrt(2 * TOKENS), rel=0.2)


SPECTRUM = 2.0 ** torch.arange(10, dtype=torch.float64)  # eigenvalues 1, 2, 4, ..., 512


def features_with_spectrum(n: int, gen: torch.Generator) -> torch.Tensor:
    """n tokens whose uncentred second moment XᵀX/n is exactly U diag(SPECTRUM) Uᵀ."""
    q, _ = torch.linalg.qr(torch.randn(n, 10, generator=gen, dtype=torch.float64))  # qᵀq = I
    u, _ = torch.linalg.qr(torch.randn(10, 10, generator=gen, dtype=torch.float64))
    return math.sqrt(n) * q @ torch.diag(SPECTRUM.sqrt()) @ u.T


def test_condition_numbers_by_hand():
    # ascending s = 1, 2, 4, ..., 512 (C = 10): Cmax = 512, C50% = s[-1]/s[5] = 16, C80% = s[-1]/s[2] = 128
    gen = torch.Generator().manual_seed(5)
    x = features_with_spectrum(400, gen)
    assert condition_numbers(x.T @ x / 400) == pytest.approx({"cmax": 512.0, "c50": 16.0, "c80": 128.0})


def test_conditioning_of_a_norm_input_through_the_hooks_excludes_padding():
    gen = torch.Generator().manual_seed(6)
    x = features_with_spectrum(120, gen).float()
    pad = torch.zeros(2, 64, dtype=torch.bool)
    pad[:, 60:] = True  # 2 x 60 real tokens, 8 pads of garbage
    batch_x = torch.full((2, 64, 10), 1e3)
    batch_x[~pad] = x
    model = OneNorm("ln", dim=10)
    result = run_planted(model, [(batch_x, pad)], [])
    (row,) = result.conditioning
    assert row["n_tokens"] == 120 and row["dim"] == 10 and row["module"] == "norm"
    assert row["cmax"] == pytest.approx(512.0, rel=1e-4)
    assert row["c50"] == pytest.approx(16.0, rel=1e-4)
    assert row["c80"] == pytest.approx(128.0, rel=1e-4)
    # LN keeps no batch statistics: its input gets shadow rows, without observed or lag
    components = {r["component"] for r in result.tid}
    assert {r["method"] for r in result.tid} == {"shadow"}
    assert components == {"floor", "batch_vs_population", "structure", "floor_theory"}


# --- trained runs ---------------------------------------------------------------------------------


def tiny_config(norm: str, **optim) -> dict:
    return {
        "task": "tagging",
        "seed": 3,
        "data": {"source": "synthetic", "options": {"n_train": 256, "n_valid": 16, "n_test": 16}},
        "model": {"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 2, "norm": norm, "placement": "pre"},
        "optim": {"lr": 3e-3, "warmup_steps": 5, **optim},
        "train": {"max_steps": 20, "max_tokens": 128, "log_every": 10, "threads": 1, "progress": "off"},
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for norm in ("bn", "ln", "powernorm"):
        train(tiny_config(norm), root / norm)
        out[norm] = root / norm
    return out


def read_probe(folder):
    tid = pd.read_json(folder / FILES[0], lines=True)
    cond = pd.read_json(folder / FILES[1], lines=True)
    return tid, cond, json.loads((folder / FILES[2]).read_text())


def test_cli_writes_the_three_files_for_a_bn_run(runs, tmp_path):
    assert main(["probe", "--run", str(runs["bn"]), "--out", str(tmp_path / "p"), "--batches", "3"]) == 0
    tid, cond, summary = read_probe(tmp_path / "p")
    assert summary["status"] == "completed" and summary["run_status"] == "completed"
    assert summary["steps"] == 20 and summary["n_batches"] == 3 and summary["seconds"] > 0
    modules = {f"encoder.layers.{i}.{p}" for i in range(2) for p in ("attn_norm", "ffn_norm")}
    modules.add("encoder.final_norm")
    assert set(cond["module"]) == modules and set(tid["module"]) == modules
    assert (cond["dim"] == 16).all() and (cond["c80"] >= cond["c50"]).all() and (cond["c50"] >= 1).all()
    per_module = tid.groupby("module").size()
    assert (per_module == 11).all()  # 2 kinds x (observed, floor, bvp, structure, lag) + floor_theory
    assert set(tid["method"]) == {"batch_stats"} and (tid["n_batches"][tid.component != "lag"] == 3).all()
    columns = {"module", "layer", "position", "kind", "component", "value", "std", "n_batches",
               "tokens_per_batch", "method"}
    assert columns <= set(tid.columns)


def test_population_statistics_equal_a_brute_force_pass(runs, tmp_path):
    """The one-pass float64 sums against every input feature of one norm, stored and reduced directly."""
    from normlab.train import config as config_mod
    from normlab.train.batching import EpochStream
    from normlab.train.checkpoint import load
    from normlab.train.engine import build_run_model, train_batches
    from normlab.train.objectives import forward
    from normlab.train.tasks import load_task

    probe_run(runs["bn"], tmp_path / "p", batches=2, population_tokens=0)
    tid, _, summary = read_probe(tmp_path / "p")
    cfg = config_mod.load(runs["bn"] / "config.yaml")
    task = load_task(cfg["task"], cfg["data"], cfg["seed"])
    model = build_run_model(cfg, task)
    model.load_state_dict(load(runs["bn"] / "checkpoints" / "last.pt")["model"])
    norm = model.encoder.layers[1].attn_norm
    seen = []
    norm.register_forward_pre_hook(lambda m, args: seen.append(args[0][~args[1]].double()))
    index_batches = train_batches(cfg, task)
    stream = EpochStream(task, index_batches, cfg["seed"])
    model.eval()
    with torch.no_grad(), batch_stats_inference(model):
        for _ in index_batches:
            forward(model, task.family, next(stream))
    tokens = torch.cat(seen)
    assert summary["population_tokens"] == tokens.shape[0]
    mean, sigma = tokens.mean(0), tokens.var(0, correction=0).sqrt()
    lag = tid.set_index(["module", "kind", "component"]).loc["encoder.layers.1.attn_norm"]
    expected_mean_lag = (norm.running_mean.double() - mean).norm() / sigma.norm()
    expected_var_lag = (norm.running_var.double().sqrt() - sigma).norm() / sigma.norm()
    assert lag.loc[("mean_tid", "lag"), "value"] == pytest.approx(float(expected_mean_lag), rel=1e-6)
    assert lag.loc[("var_tid", "lag"), "value"] == pytest.approx(float(expected_var_lag), rel=1e-6)


def test_ln_run_gets_shadow_rows_and_powernorm_only_variance(runs, tmp_path):
    probe_run(runs["ln"], tmp_path / "ln", batches=2)
    tid, cond, _ = read_probe(tmp_path / "ln")
    assert set(tid["method"]) == {"shadow"} and not tid["component"].isin(["observed", "lag"]).any()
    assert len(cond) == 5
    probe_run(runs["powernorm"], tmp_path / "pn", batches=2)
    tid, cond, _ = read_probe(tmp_path / "pn")
    assert set(tid["kind"]) == {"var_tid"} and set(tid["method"]) == {"batch_stats"}
    assert set(tid["component"]) == {"observed", "floor", "batch_vs_population", "structure", "lag"}
    assert len(cond) == 5


def test_diverged_run_gives_empty_files_and_its_status(tmp_path):
    run = tmp_path / "run"
    final = train(tiny_config("bn", lr=1e30, warmup_steps=0, schedule="constant"), run)
    assert final["status"] == "diverged"
    assert main(["probe", "--run", str(run), "--out", str(tmp_path / "p")]) == 0
    for name in FILES[:2]:
        assert (tmp_path / "p" / name).read_text() == ""
    summary = json.loads((tmp_path / "p" / FILES[2]).read_text())
    assert summary["status"] == "skipped" and summary["run_status"] == "diverged"
    assert summary["n_batches"] == 0 and "diverged at step" in summary["reason"]


def test_a_folder_that_is_not_a_finished_run_is_a_clear_error(runs, tmp_path, capsys):
    assert main(["probe", "--run", str(tmp_path / "nothing"), "--out", str(tmp_path / "p")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((runs["bn"] / "config.yaml").read_text())
    assert main(["probe", "--run", str(unfinished), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "not a finished run" in err and "final.json" in err and "--resume" in err
    assert not (tmp_path / "p").exists()


# --- real data ------------------------------------------------------------------------------------


@pytest.mark.network  # prepares WNUT-16 (~2 s) unless $NORMLAB_DATA already holds it
def test_probe_on_a_real_corpus(tmp_path):
    """A tiny run on WNUT-16 (tagging, real token statistics), then the probe over its whole train set."""
    from normlab import data

    cache = os.environ.get("NORMLAB_DATA") or str(tmp_path / "data")
    try:
        data.load("wnut16", "train", cache)  # a prepared cache is used as it is (it may be read-only)
    except FileNotFoundError:
        data.prepare("wnut16", cache)
    cfg = tiny_config("bn")
    cfg["data"] = {"source": "normlab", "name": "wnut16", "options": {"cache": cache, "max_examples": 600}}
    cfg["train"].update(max_tokens=512, max_steps=30)
    train(cfg, tmp_path / "run")
    summary = probe_run(tmp_path / "run", tmp_path / "p", batches=8, population_tokens=0)
    tid, cond, _ = read_probe(tmp_path / "p")
    assert summary["status"] == "completed" and summary["n_batches"] == 8
    assert len(cond) == 5 and cond[["c50", "c80", "cmax"]].gt(0).all().all()
    floor = tid[(tid.component == "floor") & (tid.kind == "mean_tid")]["value"]
    theory = tid[(tid.component == "floor_theory")]["value"]
    # real token features are not Gaussian, but the i.i.d. floor is still ~1/√N (well within 2x)
    assert ((floor.to_numpy() / theory.to_numpy()) < 2).all() and ((floor.to_numpy() / theory.to_numpy()) > 0.5).all()
