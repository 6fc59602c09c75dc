"""normlab probe: the TID decomposition on planted cases with known answers (floors, batch structure,
lag, a layer-0 excess, dropout as in training), conditioning against hand-made spectra, and the command
on trained runs (synthetic, diverged, not a run, real data)."""

from __future__ import annotations

import copy
import json
import math
import os

import pandas as pd
import pytest
import torch
from torch import nn

from normlab.cli import main
from normlab.norms import batch_stat_norms, batch_stats_inference, build_norm
from normlab.tid import tid_from_statistics
from normlab.tid.probe import FILES, condition_numbers, decompose, probe_run
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


def run_planted(model, real, population, sentence=(), **kw):
    return decompose(model, lambda b: model(b), real, population, sentence, **kw)


def test_iid_tokens_sit_at_the_theoretical_floor_and_have_no_structure():
    gen = torch.Generator().manual_seed(1)
    model = OneNorm("bn")
    result = run_planted(model, gaussian_batches(48, gen), gaussian_batches(150, gen))
    t = table(result)
    floor_mean, floor_var = t.loc[("mean_tid", "floor_token"), "value"], t.loc[("var_tid", "floor_token"), "value"]
    assert t.loc[("mean_tid", "floor_theory"), "value"] == pytest.approx(1 / math.sqrt(TOKENS))
    # E‖μ_B − μ‖/‖σ‖ = 1/√N up to E[χ_D]/√D ≈ 1 − 1/(4D); ‖σ_B − σ‖/‖σ‖ ≈ 1/√(2N) for Gaussian tokens
    assert floor_mean == pytest.approx(1 / math.sqrt(TOKENS), rel=0.08)
    assert floor_var == pytest.approx(1 / math.sqrt(2 * TOKENS), rel=0.12)
    # the real batches are i.i.d. too: same size as the floor, nothing left for batch structure
    for kind, floor in (("mean_tid", floor_mean), ("var_tid", floor_var)):
        assert abs(t.loc[(kind, "batch_vs_population"), "value"] - floor) < 0.15 * floor
        assert t.loc[(kind, "batch_vs_population"), "value"] == pytest.approx(floor, rel=0.15)
    rows = t.reset_index()
    assert set(rows["n_batches"][rows.component != "lag"]) == {48}
    assert set(rows["tokens_per_batch"].dropna()) == {TOKENS}
    assert set(rows["population_tokens"]) == {(48 + 150) * TOKENS}
    assert set(rows["method"]) == {"batch_stats"}
    assert set(rows["probe_mode"]) == {"train"} and set(rows["momentum"]) == {0.05}
    assert "structure" not in set(rows["component"]) and "floor_sentence" not in set(rows["component"])


def test_planted_batch_structure_shows_as_structure_not_floor():
    gen = torch.Generator().manual_seed(2)
    model = OneNorm("bn")
    # every token of a batch shares a shift ~ N(0, 0.5²): batch means far beyond the i.i.d. floor
    result = run_planted(model, gaussian_batches(16, gen, 0.5), gaussian_batches(150, gen, 0.5))
    t = table(result)
    floor = t.loc[("mean_tid", "floor_token"), "value"]
    assert floor == pytest.approx(1 / math.sqrt(TOKENS), rel=0.15)
    # ‖μ_B − μ*‖/‖σ*‖ ≈ √(0.25 + 1/N)/√1.25 ≈ 0.46
    assert t.loc[("mean_tid", "batch_vs_population"), "value"] == pytest.approx(0.46, rel=0.2)
    assert t.loc[("mean_tid", "batch_vs_population"), "value"] - floor > 5 * floor


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
    assert t.loc[("mean_tid", "observed"), "value"] > 3 * t.loc[("mean_tid", "floor_token"), "value"]


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
    assert t.loc[("var_tid", "floor_token"), "value"] == pytest.approx(1 / math.sqrt(2 * TOKENS), rel=0.2)
    assert set(t["momentum"]) == {0.05}  # pn_vanilla's running quadratic mean


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
    cond = pd.DataFrame(result.conditioning).set_index(["site", "centred"])
    assert len(cond) == 4 and set(cond["module"]) == {"norm"} and set(cond["probe_mode"]) == {"train"}
    row = cond.loc[("input", False)]  # the former measurement: uncentred second moment of the input
    assert row["n_tokens"] == 120 and row["dim"] == 10 and row["module"] == "norm"
    assert row["cmax"] == pytest.approx(512.0, rel=1e-4)
    assert row["c50"] == pytest.approx(16.0, rel=1e-4)
    assert row["c80"] == pytest.approx(128.0, rel=1e-4)
    # the output site is LN's output over the non-pad tokens, centred as torch.cov centres (divisor n)
    with torch.no_grad():
        y = model.norm(batch_x, pad)[~pad].double()
    expected = condition_numbers(torch.cov(y.T, correction=0))
    out = cond.loc[("output", True)]
    assert out["n_tokens"] == 120
    for measure, value in expected.items():
        assert out[measure] == pytest.approx(value, rel=1e-6)
    # LN keeps no batch statistics: its input gets shadow rows, without observed or lag
    components = {r["component"] for r in result.tid}
    assert {r["method"] for r in result.tid} == {"shadow"}
    assert components == {"floor_token", "batch_vs_population", "floor_theory"}
    assert {r["momentum"] for r in result.tid} == {None}


def features_with_covariance(n: int, gen: torch.Generator, mean: torch.Tensor) -> torch.Tensor:
    """n tokens whose centred covariance (divisor n) is exactly diag(SPECTRUM), shifted by ``mean``."""
    z = torch.randn(n, 10, generator=gen, dtype=torch.float64)
    q, _ = torch.linalg.qr(z - z.mean(0))  # orthonormal columns that sum to zero
    return math.sqrt(n) * q * SPECTRUM.sqrt() + mean


def test_centred_conditioning_finds_a_planted_covariance_that_a_planted_mean_hides_from_the_uncentred():
    gen = torch.Generator().manual_seed(7)
    mean = torch.full((10,), 30.0, dtype=torch.float64)  # ‖mean‖² = 9000, far above the largest variance 512
    x = features_with_covariance(240, gen, mean).float()
    pad = torch.zeros(4, 64, dtype=torch.bool)
    pad[:, 60:] = True
    batch_x = torch.full((4, 64, 10), -1e3)
    batch_x[~pad] = x
    model = OneNorm("none", dim=10)  # identity: its output is the planted features
    cond = pd.DataFrame(run_planted(model, [(batch_x, pad)], []).conditioning).set_index(["site", "centred"])
    for site in ("output", "input"):
        centred = cond.loc[(site, True)]
        assert centred["cmax"] == pytest.approx(512.0, rel=1e-5)  # the known spectrum, mean removed
        assert centred["c50"] == pytest.approx(16.0, rel=1e-5)
        assert centred["c80"] == pytest.approx(128.0, rel=1e-5)
        uncentred = cond.loc[(site, False)]
        assert uncentred["cmax"] > 9000  # the mean's direction dominates: λ_max ≥ ‖mean‖²
        assert uncentred["c50"] > 10 * centred["c50"]


# --- dropout as in training, the sentence floor, per-layer records -------------------------------


class DropoutStack(nn.Module):
    """Linear -> Dropout -> BN, twice: the norms' batch statistics depend on the dropout masks."""

    def __init__(self, p: float = 0.3):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleDict({"proj": nn.Linear(D, D), "drop": nn.Dropout(p), "norm": build_norm("bn", D)})
            for _ in range(2)
        )

    def forward(self, batch):
        x, pad = batch
        for layer in self.layers:
            x = layer["norm"](layer["drop"](layer["proj"](x)), pad)
        return x


def training_mode_tids(model, batches, seed, training):
    """The paper's TIDs of each BN, per batch, from plain forwards (train or eval mode, same seed)."""
    model = copy.deepcopy(model)  # its running statistics move; the reference is the frozen ones
    running = {n: (m.running_mean.clone(), m.running_var.clone()) for n, m in batch_stat_norms(model).items()}
    model.train(training)
    out = {n: [] for n in running}
    torch.manual_seed(seed)
    with torch.no_grad(), batch_stats_inference(model):
        for b in batches:
            model(b)
            for n, m in batch_stat_norms(model).items():
                out[n].append(tid_from_statistics(m.batch_mean.double(), m.batch_var.double(), *running[n]))
    return {n: torch.stack(v)[:, :2].mean(0) for n, v in out.items()}  # mean_tid, var_tid


def test_probe_with_dropout_matches_training_forwards_and_differs_from_eval_mode():
    gen = torch.Generator().manual_seed(8)
    model = DropoutStack()
    with torch.no_grad():
        for b in gaussian_batches(200, gen):  # training leaves running statistics accumulated with dropout
            model(b)
    real, population = gaussian_batches(8, gen), gaussian_batches(20, gen)
    modes = {}
    for mode in ("train", "eval"):
        t = pd.DataFrame(run_planted(model, real, population, mode=mode, seed=11).tid)
        assert set(t["probe_mode"]) == {mode}
        modes[mode] = t[t.component == "observed"].set_index(["module", "kind"])["value"]
        reference = training_mode_tids(model, real, seed=11, training=mode == "train")
        for name, (mean_tid, var_tid) in reference.items():
            assert modes[mode][(name, "mean_tid")] == pytest.approx(float(mean_tid), rel=1e-5)
            assert modes[mode][(name, "var_tid")] == pytest.approx(float(var_tid), rel=1e-5)
    # without dropout, the first norm's batch variance sits below a running variance that includes
    # dropout's (1/(1 - p) of the second moment): the variance TID is several times the training one
    first = ("layers.0.norm", "var_tid")
    assert modes["eval"][first] > 3 * modes["train"][first]
    # and the model's own modes are restored
    assert model.training and not any(m.eval_with_batch_stats for m in batch_stat_norms(model).values())


def sentence_pool(n_sentences, gen, offset_scale, length=16, dim=D):
    """Sentences of ``length`` tokens, each token N(0, 1) plus its sentence's offset ~ N(0, offset_scale²)."""
    tokens = torch.randn(n_sentences, length, dim, generator=gen)
    return tokens + offset_scale * torch.randn(n_sentences, 1, dim, generator=gen)


def random_sentence_batches(pool, n_batches, sentences, gen):
    """Batches of ``sentences`` distinct sentences drawn at random from the pool."""
    out = []
    for _ in range(n_batches):
        pick = torch.randperm(len(pool), generator=gen)[:sentences]
        x = pool[pick]
        out.append((x, torch.zeros(x.shape[:2], dtype=torch.bool)))
    return out


@pytest.mark.parametrize("offset_scale", [0.0, 0.5])
def test_sentence_floor_exceeds_the_token_floor_when_tokens_of_a_sentence_are_correlated(offset_scale):
    gen = torch.Generator().manual_seed(9)
    pool = sentence_pool(2000, gen, offset_scale)
    batches = random_sentence_batches(pool, 200, 16, gen)  # 16 sentences x 16 tokens = 256 tokens
    real, population, sentence = batches[:48], batches[48:152], batches[152:]
    t = table(run_planted(OneNorm("bn"), real, population, sentence))
    token, sent = t.loc[("mean_tid", "floor_token")], t.loc[("mean_tid", "floor_sentence")]
    assert sent["n_batches"] == 48 and sent["tokens_per_batch"] == 256
    n, m, var = 256, 16, 1 + offset_scale**2
    assert token["value"] == pytest.approx(1 / math.sqrt(n), rel=0.1)  # the i.i.d. floor ignores sentences
    # random whole sentences: ‖μ_B − μ*‖/‖σ*‖ ≈ √((1/n + offset²/m) / (1 + offset²))
    assert sent["value"] == pytest.approx(math.sqrt((1 / n + offset_scale**2 / m) / var), rel=0.1)
    if offset_scale:
        assert sent["value"] > 1.6 * token["value"]  # ≈ 2.0 expected
    else:  # i.i.d. tokens: both floors are the same sampling noise (48 batches each: within 10 %)
        assert sent["value"] == pytest.approx(token["value"], rel=0.1)
        assert t.loc[("var_tid", "floor_sentence"), "value"] == pytest.approx(
            t.loc[("var_tid", "floor_token"), "value"], rel=0.15)
    # the real batches here are random sentences too: nothing above the sentence floor
    assert t.loc[("mean_tid", "batch_vs_population"), "value"] == pytest.approx(sent["value"], rel=0.15)


class NormStack(nn.Module):
    """BN, then (Linear, tanh, BN) twice: norms ``layers.0.norm`` .. ``layers.2.norm``."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.ModuleDict({"norm": build_norm("bn", D)}) for _ in range(3))
        self.projs = nn.ModuleList(nn.Linear(D, D) for _ in range(2))

    def forward(self, batch):
        x, pad = batch
        x = self.layers[0]["norm"](x, pad)
        for proj, layer in zip(self.projs, self.layers[1:], strict=True):
            x = layer["norm"](torch.tanh(proj(x)), pad)
        return x


def test_a_planted_excess_in_layer_0_shows_in_layer_0_only():
    gen = torch.Generator().manual_seed(10)
    # 40 buckets of 32 sentences; a bucket's sentences share its offset ~ N(0, 0.5²): "length
    # bucketing" makes real batches of one bucket each, while random sentences mix the buckets
    buckets = [sentence_pool(32, gen, 0.0, length=8) + 0.5 * torch.randn(D, generator=gen) for _ in range(40)]
    no_pad = torch.zeros(32, 8, dtype=torch.bool)
    real_and_population = [(b, no_pad) for b in buckets]
    sentence = random_sentence_batches(torch.cat(buckets), 16, 32, gen)
    model = NormStack()
    result = run_planted(model, real_and_population[:16], real_and_population[16:], sentence)
    t = pd.DataFrame(result.tid)
    assert set(t["layer"]) == {0, 1, 2}  # one set of records per layer, no mean over layers
    values = t[t.kind == "mean_tid"].pivot_table(index="layer", columns="component", values="value")
    ratio_sentence = values["batch_vs_population"] / values["floor_sentence"]
    ratio_token = values["batch_vs_population"] / values["floor_token"]
    assert ratio_sentence[0] > 3 and ratio_token[0] > 5  # the batching policy's excess, at layer 0
    for layer in (1, 2):  # BN at layer 0 re-centred every batch on its own mean: gone below
        assert ratio_sentence[layer] < 1.5 and ratio_token[layer] < 1.5


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
    assert summary["probe_mode"] == "train" and summary["n_sentence_batches"] == 3
    modules = {f"encoder.layers.{i}.{p}" for i in range(2) for p in ("attn_norm", "ffn_norm")}
    modules.add("encoder.final_norm")
    assert set(cond["module"]) == modules and set(tid["module"]) == modules
    assert (cond["dim"] == 16).all() and (cond["c80"] >= cond["c50"]).all() and (cond["c50"] >= 1).all()
    assert (cond.groupby("module").size() == 4).all()  # site (output, input) x centred (True, False)
    assert set(zip(cond["site"], cond["centred"], strict=True)) == {
        (s, c) for s in ("output", "input") for c in (True, False)}
    per_module = tid.groupby("module").size()
    assert (per_module == 11).all()  # 2 kinds x (observed, bvp, floor_token, floor_sentence, lag) + floor_theory
    assert set(tid["method"]) == {"batch_stats"} and (tid["n_batches"][tid.component != "lag"] == 3).all()
    columns = {"module", "layer", "position", "kind", "component", "value", "std", "n_batches",
               "tokens_per_batch", "method", "probe_mode", "momentum"}
    assert columns <= set(tid.columns)
    assert set(tid["probe_mode"]) == {"train"} and set(tid["momentum"]) == {0.05}
    assert set(cond["probe_mode"]) == {"train"}
    # the sentence floor's batches hold as many tokens as the real ones, up to one example (<= 12 tokens)
    tpb = tid[tid.kind == "mean_tid"].set_index(["module", "component"])["tokens_per_batch"]
    for module in modules:
        assert abs(tpb[(module, "floor_sentence")] - tpb[(module, "batch_vs_population")]) <= 12
    assert main(["probe", "--run", str(runs["bn"]), "--out", str(tmp_path / "e"), "--batches", "3",
                 "--mode", "eval"]) == 0
    tid, cond, summary = read_probe(tmp_path / "e")
    assert summary["probe_mode"] == "eval" and set(tid["probe_mode"]) == {"eval"}
    assert set(cond["probe_mode"]) == {"eval"}


def test_the_probe_is_reproducible_and_its_seed_draws_the_dropout(runs, tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        probe_run(runs["bn"], tmp_path / name, batches=3, population_tokens=0, seed=seed)
    text = {name: [(tmp_path / name / f).read_text() for f in FILES[:2]] for name in "abc"}
    assert text["a"] == text["b"]  # same seed: identical records
    observed = [read_probe(tmp_path / name)[0].query("component == 'observed'")["value"] for name in "ac"]
    assert not observed[0].equals(observed[1])  # another seed, other dropout masks (dropout 0.1)


def sentence_task_batches():
    from normlab.train.engine import train_batches
    from normlab.train.tasks import load_task

    cfg = tiny_config("bn")
    task = load_task(cfg["task"], cfg["data"], cfg["seed"])
    return task, train_batches({**cfg, "train": {**cfg["train"], "batch_size": 8, "max_sentences": None}}, task)


def test_sentence_batches_are_random_whole_examples_at_each_token_count():
    from normlab.tid.probe import sentence_batches

    task, index_batches = sentence_task_batches()
    targets = [120, 64, 37, 128, 10_000]
    batches = list(sentence_batches(task, index_batches, targets, seed=5))
    assert len(batches) == len(targets)
    for batch, target in zip(batches[:-1], targets[:-1], strict=True):
        assert len(set(batch.indices.tolist())) == len(batch.indices)  # no example twice in a batch
        assert abs(batch.n_tokens - target) <= 6  # synthetic examples have 3-12 tokens: within half of one
    assert len(batches[-1].indices) == 256  # a target above the training set takes all of it, once
    again = list(sentence_batches(task, index_batches, targets, seed=5))
    other = list(sentence_batches(task, index_batches, targets, seed=6))
    assert all((a.indices == b.indices).all() for a, b in zip(batches, again, strict=True))
    assert any(set(a.indices) != set(b.indices) for a, b in zip(batches, other, strict=True))


def brute_force_inputs(run_dir, module, mode, seed):
    """Every non-pad input token of one norm over the run's first epoch, from plain forwards (train:
    training forwards, whose running updates nothing reads; eval: no dropout), and its running statistics."""
    from normlab.train import config as config_mod
    from normlab.train.batching import EpochStream
    from normlab.train.checkpoint import load
    from normlab.train.engine import build_run_model, train_batches
    from normlab.train.objectives import forward
    from normlab.train.tasks import load_task

    cfg = config_mod.load(run_dir / "config.yaml")
    task = load_task(cfg["task"], cfg["data"], cfg["seed"])
    model = build_run_model(cfg, task)
    model.load_state_dict(load(run_dir / "checkpoints" / "last.pt")["model"])
    norm = model.get_submodule(module)
    running = norm.running_mean.double().clone(), norm.running_var.double().clone()
    seen = []
    norm.register_forward_pre_hook(lambda m, args: seen.append(args[0][~args[1]].double()))
    index_batches = train_batches(cfg, task)
    stream = EpochStream(task, index_batches, cfg["seed"])
    model.train(mode == "train")
    torch.manual_seed(seed)
    with torch.no_grad(), batch_stats_inference(model):
        for _ in index_batches:
            forward(model, task.family, next(stream))
    return torch.cat(seen), running


def test_population_statistics_equal_a_brute_force_pass(runs, tmp_path):
    """The one-pass float64 sums against every input feature of one norm, stored and reduced directly,
    in both modes (train: the same dropout masks from the same seed; eval: no dropout)."""
    module = "encoder.layers.1.attn_norm"
    for mode in ("eval", "train"):
        probe_run(runs["bn"], tmp_path / mode, mode=mode, batches=2, population_tokens=0, seed=4)
        tid, _, summary = read_probe(tmp_path / mode)
        tokens, (running_mean, running_var) = brute_force_inputs(runs["bn"], module, mode, seed=4)
        assert summary["population_tokens"] == tokens.shape[0]
        mean, sigma = tokens.mean(0), tokens.var(0, correction=0).sqrt()
        lag = tid.set_index(["module", "kind", "component"]).loc[module]
        expected_mean_lag = (running_mean - mean).norm() / sigma.norm()
        expected_var_lag = (running_var.sqrt() - sigma).norm() / sigma.norm()
        assert lag.loc[("mean_tid", "lag"), "value"] == pytest.approx(float(expected_mean_lag), rel=1e-6)
        assert lag.loc[("var_tid", "lag"), "value"] == pytest.approx(float(expected_var_lag), rel=1e-6)


def test_ln_run_gets_shadow_rows_and_powernorm_only_variance(runs, tmp_path):
    probe_run(runs["ln"], tmp_path / "ln", batches=2)
    tid, cond, _ = read_probe(tmp_path / "ln")
    assert set(tid["method"]) == {"shadow"} and not tid["component"].isin(["observed", "lag"]).any()
    assert tid["momentum"].isna().all()
    assert len(cond) == 5 * 4
    probe_run(runs["powernorm"], tmp_path / "pn", batches=2)
    tid, cond, _ = read_probe(tmp_path / "pn")
    assert set(tid["kind"]) == {"var_tid"} and set(tid["method"]) == {"batch_stats"}
    assert set(tid["component"]) == {"observed", "floor_token", "floor_sentence", "batch_vs_population", "lag"}
    assert tid["momentum"].to_numpy() == pytest.approx(0.1)  # 1 - alpha_fwd
    assert len(cond) == 5 * 4


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
    assert len(cond) == 5 * 4 and cond[["c50", "c80", "cmax"]].gt(0).all().all()
    floor = tid[(tid.component == "floor_token") & (tid.kind == "mean_tid")]["value"]
    theory = tid[(tid.component == "floor_theory")]["value"]
    # real token features are not Gaussian, but the i.i.d. floor is still ~1/√N (well within 2x)
    assert ((floor.to_numpy() / theory.to_numpy()) < 2).all() and ((floor.to_numpy() / theory.to_numpy()) > 0.5).all()
