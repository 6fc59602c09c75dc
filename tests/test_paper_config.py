"""config/paper.yaml as the authors ran it: norm placement per grid, RBN's λ per dataset, init and
precision, PowerNorm's final norm, the modern grid, and the λ sweep overlay (docs/paper_config.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from normlab.models import ModelOptions
from normlab.norms import NORMS, LayerNorm
from normlab.train import train
from normlab.train.families import FAMILIES
from normlab.workflow import load, load_file, merge

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflows/schemas/config.schema.yaml"
PAPER = ROOT / "config/paper.yaml"
OVERLAY = ROOT / "config/paper_rbn_lambda.yaml"


@pytest.fixture(scope="module")
def paper():
    return load_file(PAPER, SCHEMA)


def cells_of(cell_list, grid):
    return [c for c in cell_list if grid in c.grids]


def built_norms(run: dict) -> dict[str, type]:
    """The norm class at every norm position of a cell's model, built at a tiny size (placement is
    independent of the size) so that the whole grid is checked in seconds."""
    model = dict(run["model"], d_model=16, n_heads=2, d_ff=32, n_layers=2, n_decoder_layers=2,
                 norm_options={k: v for k, v in run["model"]["norm_options"].items() if k != "groups"},
                 final_norm_options={k: v for k, v in run["model"]["final_norm_options"].items() if k != "groups"})
    torch.manual_seed(0)
    family = FAMILIES[run["task"]]
    sizes = {"translation": dict(vocab_size=20, pad_id=0, bos_id=1, eos_id=2)}[run["task"]]
    net = family.model_class(ModelOptions(**model), **sizes)
    return {name: type(m) for name, m in net.named_modules() if name.endswith("norm")}


def test_the_ln_family_on_iwslt14_has_the_studied_norm_in_every_position_in_the_papers_placement(paper):
    _, cell_list, runs = paper
    cells = [c for c in cells_of(cell_list, "ln_family") if c.dataset == "iwslt14_de_en.ln_family"]
    assert {(c.placement, c.norm) for c in cells} == {
        (p, n) for p in ("post", "pre") for n in ("none", "ln", "ln_simple", "detachnorm", "adanorm")}
    for cell in cells:
        run = runs[cell.run_id]
        types = built_norms(run)
        n_expected = 2 * 2 + 2 * 3 + (2 if cell.placement == "pre" else 0)
        assert len(types) == n_expected and set(types.values()) == {NORMS[cell.norm]}, cell.run_id
        assert run["model"]["norm_sites"] == "every" and run["model"]["norm_scope"] == "all"
        if cell.norm == "none":  # "w/o Norm": no LayerNorm anywhere
            assert LayerNorm not in types.values()


def test_the_ln_family_in_the_released_codes_placement_changes_only_the_two_final_norms(paper):
    _, cell_list, runs = paper
    cells = cells_of(cell_list, "ln_family_code")
    assert {c.dataset for c in cells} == {"iwslt14_de_en.ln_family_code"} and {c.placement for c in cells} == {"pre"}
    for cell in cells:
        types = built_norms(runs[cell.run_id])
        finals = {k: v for k, v in types.items() if k.endswith("final_norm")}
        assert finals == {"encoder.final_norm": NORMS[cell.norm], "decoder.final_norm": NORMS[cell.norm]}
        assert {v for k, v in types.items() if k not in finals} == {LayerNorm}, cell.run_id


def test_the_rbn_grid_keeps_the_authors_encoder_only_scope(paper):
    _, cell_list, runs = paper
    for cell in cells_of(cell_list, "bn_rbn"):
        if cell.dataset not in ("iwslt14_de_en", "wmt16_en_de"):
            continue
        run = runs[cell.run_id]
        assert (run["model"]["norm_scope"], run["model"]["norm_sites"]) == ("encoder", "every")
        if cell.dataset == "iwslt14_de_en":
            types = built_norms(run)
            assert {v for k, v in types.items() if k.startswith("decoder")} == {LayerNorm}
            assert {v for k, v in types.items() if k.startswith("encoder.layers")} == {NORMS[cell.norm]}
            if cell.placement == "pre":  # LN as in the RBN code; PowerNorm's own, as its release
                assert types["encoder.final_norm"] is (NORMS["powernorm"] if cell.norm == "powernorm" else LayerNorm)


def test_the_ln_family_recipe_follows_adanorms_scripts_where_it_differs(paper):
    _, _, runs = paper
    rbn_pre, ln_pre = runs["iwslt14_de_en/pre/ln/seed1"], runs["iwslt14_de_en.ln_family/pre/ln/seed1"]
    code_pre = runs["iwslt14_de_en.ln_family_code/pre/ln/seed1"]
    assert (rbn_pre["train"]["max_steps"], ln_pre["train"]["max_steps"], code_pre["train"]["max_steps"]) == (
        66000, 90000, 90000)
    # --update-freq 2 in AdaNorm's scripts, 1 (fairseq's default) in RBN's
    assert (rbn_pre["train"]["update_freq"], ln_pre["train"]["update_freq"], code_pre["train"]["update_freq"]) == (
        1, 2, 2)
    assert ln_pre["optim"] == code_pre["optim"] == rbn_pre["optim"]  # lr 1.5e-3 from 1e-7, warm-up 8000
    assert ln_pre["optim"]["lr"] == 1.5e-3 and ln_pre["optim"]["warmup_init_lr"] == 1e-7
    assert runs["iwslt14_de_en.ln_family/post/ln/seed1"]["optim"]["lr"] == 5e-4
    assert ln_pre["model"]["init"] == "fairseq" and rbn_pre["model"]["init"] == "rbn_fork"


# RBN's λ per dataset: IWSLT14's published values; elsewhere the same weight relative to the task loss,
# λ_d = λ_IWSLT14 x n_d / 3586.8 with n_d the targets per batch (docs/paper_config.md, "RBN's λ").
IWSLT14_TARGETS = 3586.8  # target tokens per 4096-token update in the RBN authors' log (wpb)
PUBLISHED = {"post": {"penalty_mean": 60, "penalty_var": 0}, "pre": {"penalty_mean": 0.1, "penalty_var": 0.01}}
TARGETS_PER_BATCH = {
    "wmt16_en_de": IWSLT14_TARGETS * 8192 / 4096,  # token budgets: the IWSLT14 fill
    "ptb": 120 * 32,  # the stream: rows x tgt_len target tokens, nothing padded
    "wikitext103": 60 * 150,
    # the CRF's loss, a mean of sentence NLLs, is 1/16 of a sum of token-sized terms: the penalty divided
    # by the 16 sentences then weighs as much against it as against a per-token loss over these tokens
    "conll2003": 16 * 14.5,  # 16 sentences x mean tokens (203,621 / 14,041)
    "resume": 16 * 32.5,  # 16 sentences x mean characters (124.1k / 3,821)
    "imdb": 64, "yelp_polarity": 64, "dbpedia": 64,  # sentences
    "cifar10": 128,  # images
}


def declared(dataset: str, placement: str) -> dict:
    if dataset == "iwslt14_de_en":
        return PUBLISHED[placement]
    ratio = TARGETS_PER_BATCH[dataset] / IWSLT14_TARGETS
    return {k: float(f"{v * ratio:.2g}") for k, v in PUBLISHED[placement].items()}


def test_rbn_lambda_is_per_dataset_and_keeps_iwslt14s_weight_relative_to_the_task_loss(paper):
    _, cell_list, runs = paper
    rbn = [c for c in cell_list if c.norm == "rbn"]
    assert {c.dataset for c in rbn} == set(TARGETS_PER_BATCH) | {"iwslt14_de_en"}
    for cell in rbn:
        options = runs[cell.run_id]["model"]["norm_options"]
        assert options["penalty_type"] == "diff"
        assert {k: options[k] for k in ("penalty_mean", "penalty_var")} == pytest.approx(
            declared(cell.dataset, cell.placement)), cell.run_id
        assert options["penalty_mean"] > 0, cell.run_id
    # the effective coefficient λ / n matches IWSLT14's within the rounding
    for dataset, n in TARGETS_PER_BATCH.items():
        lam = runs[f"{dataset}/post/rbn/seed1"]["model"]["norm_options"]["penalty_mean"]
        assert lam / n == pytest.approx(60 / IWSLT14_TARGETS, rel=0.06), dataset


def test_every_paper_cell_runs_in_fp32_with_fairseqs_init(paper):
    _, cell_list, runs = paper
    for cell in cell_list:
        run = runs[cell.run_id]
        assert run["train"]["precision"] == "fp32", cell.run_id
        expected = "rbn_fork" if cell.dataset == "iwslt14_de_en" else "fairseq"
        assert run["model"]["init"] == expected, cell.run_id


def test_powernorm_has_its_released_final_norm_and_a_warmup_where_the_lr_has_none(paper):
    _, cell_list, runs = paper
    for cell in (c for c in cell_list if c.norm == "powernorm"):
        model, optim = runs[cell.run_id]["model"], runs[cell.run_id]["optim"]
        expected_warmup = optim["warmup_steps"] or 1000
        assert model["norm_options"]["warmup_iters"] == expected_warmup, cell.run_id
        if cell.dataset in ("iwslt14_de_en", "wmt16_en_de"):
            assert model["final_norm"] == "powernorm"
            assert model["final_norm_options"] == {"groups": model["n_heads"], "warmup_iters": 1000}


def test_the_modern_grid_resolves_with_rmsnorm_and_dyt(paper):
    _, cell_list, runs = paper
    modern = cells_of(cell_list, "modern")
    assert {c.norm for c in modern} == {"ln", "rmsnorm", "dyt", "bn", "rbn"}
    assert {c.dataset for c in modern} == {"iwslt14_de_en", "ptb", "conll2003", "imdb", "cifar10"}
    assert len(modern) == 5 * 2 * 5 * 5
    shared = [c for c in modern if c.norm in ("ln", "bn", "rbn")]
    assert all("bn_rbn" in c.grids for c in shared)  # one run each, listed under both grids
    assert {runs[c.run_id]["model"]["norm"] for c in modern} == {"ln", "rmsnorm", "dyt", "bn", "rbn"}


def test_the_rbn_lambda_overlay_is_fresh_and_scales_every_declared_lambda(paper):
    r = subprocess.run([sys.executable, str(ROOT / "tools/rbn_lambda_sweep.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    _, base_cells, base_runs = paper
    _, cell_list, runs = load_file([PAPER, OVERLAY], SCHEMA)
    sweep = cells_of(cell_list, "rbn_lambda")
    assert len(sweep) == len(TARGETS_PER_BATCH) * 4 * 2 and {c.norm for c in sweep} == {"rbn"}
    assert {c.seed for c in sweep} == {1}
    assert len(cell_list) == len(base_cells) + len(sweep)  # the paper grid is unchanged
    for cell in sweep:
        dataset, level = cell.dataset.split(".rbn_lambda-x")
        factor = float(level)
        got = runs[cell.run_id]["model"]["norm_options"]
        want = declared(dataset, cell.placement)
        assert {k: got[k] for k in want} == pytest.approx({k: float(f"{v * factor:.2g}") for k, v in want.items()})
        base = base_runs[f"{dataset}/{cell.placement}/rbn/seed1"]  # everything else is the x1 cell's
        assert {k: v for k, v in runs[cell.run_id].items() if k != "model"} == {
            k: v for k, v in base.items() if k != "model"}


def test_an_edited_overlay_is_reported_stale(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import rbn_lambda_sweep
    finally:
        sys.path.pop(0)
    stale = tmp_path / "overlay.yaml"
    stale.write_text(OVERLAY.read_text().replace("penalty_mean: 12.0", "penalty_mean: 13.0", 1))
    monkeypatch.setattr(rbn_lambda_sweep, "OVERLAY", stale)
    monkeypatch.setattr(rbn_lambda_sweep, "ROOT", tmp_path)
    assert rbn_lambda_sweep.main(["--check"]) == 1


def test_final_json_labels_where_the_studied_norm_sits(tmp_path):
    cfg = {"task": "translation", "data": {"source": "synthetic", "options": {"n_train": 64, "n_valid": 8,
                                                                              "n_test": 8}},
           "model": {"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 1, "norm": "adanorm", "placement": "pre",
                     "norm_sites": "final"},
           "train": {"max_steps": 2, "log_every": 1, "max_tokens": 128, "progress": "off", "threads": 1},
           "eval": {"beam": 1, "max_len_b": 2}}
    final = train(cfg, tmp_path / "run")
    assert (final["norm"], final["norm_sites"], final["norm_scope"]) == ("adanorm", "final", "all")
    assert json.loads((tmp_path / "run" / "final.json").read_text())["norm_sites"] == "final"


def test_a_variant_is_its_datasets_entry_with_the_variant_merged_and_its_own_run_ids():
    raw = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    raw["datasets"]["wnut16.long"] = {"train": {"max_steps": 80}}
    raw["grids"]["ln_family"]["datasets"] = ["wnut16.long"]
    raw["overrides"].append({"where": {"dataset": "wnut16.long", "norm": "adanorm"},
                             "set": {"optim": {"lr": 5e-4}}, "reason": "r"})
    _, cell_list, runs = load(raw, SCHEMA)
    variant = runs["wnut16.long/post/adanorm/seed1"]
    base = runs["wnut16/post/ln/seed1"]
    assert variant["train"]["max_steps"] == 80 and base["train"]["max_steps"] == 40
    assert variant["data"] == base["data"]  # the dataset's data and data options
    assert variant["optim"]["lr"] == 5e-4 and runs["wnut16.long/post/ln/seed1"]["optim"]["lr"] == base["optim"]["lr"]
    assert {c.corpus for c in cell_list if c.dataset == "wnut16.long"} == {"wnut16"}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["datasets"].update({"ptb.long": {}}), "datasets.ptb.long: a variant of ptb, which has no entry"),
        (lambda c: c["datasets"].update({"wnut16.Long": {}}), "the variant label 'Long' must be lower-case"),
        (lambda c: c["datasets"].update({"wnut16.depth-2": {}}), "the same name as a point of the sweep"),
        (lambda c: c["grids"]["bn_rbn"]["datasets"].append("wnut16.nope"), "'wnut16.nope' is not valid"),
    ],
)
def test_bad_variants_are_refused_naming_the_entry(edit, message):
    from normlab.workflow import WorkflowConfigError

    raw = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    edit(raw)
    with pytest.raises(WorkflowConfigError) as err:
        load(merge(raw, {}), SCHEMA)
    assert message in str(err.value)


def test_the_lm_and_ner_cells_build_transformer_xl_and_the_crf_tagger_with_the_base_settings(paper):
    """Every PTB/WikiText-103 cell is the Transformer-XL stream family, every CoNLL-2003/RESUME cell the
    CRF tagger, with the base scripts' settings; built at a small width (the options are what is checked)."""
    import numpy as np

    from normlab.models.crf_tagger import CRFTagger
    from normlab.models.transformer_xl import StreamingTransformerXL
    from normlab.train import synthetic_task
    from normlab.train.batching import collate, split_batches
    from normlab.train.examples import TaskData
    from normlab.train.families import get_family
    from normlab.train.families.lm_stream import TokenStream

    _, cell_list, runs = paper
    shrink = dict(d_model=20, d_ff=32, n_layers=2)
    for dataset, vocab, heads, rows, seg in (("ptb", 10_000, (1, 40), 120, 32),
                                             ("wikitext103", 267_735, (10, 41), 60, 150)):
        cells = [c for c in cell_list if c.dataset == dataset]
        assert {runs[c.run_id]["task"] for c in cells} == {"lm_stream"}
        run = runs[f"{dataset}/post/bn/seed1"]
        optim = run["optim"]
        assert (optim["lr"], optim["betas"], optim["weight_decay"], optim["clip_norm"], optim["warmup_steps"],
                optim["schedule"], optim["min_lr"]) == (2.5e-4, [0.9, 0.999], 0.0, 0.25, 0, "cosine", 0.0)
        family = get_family("lm_stream")
        stream = TokenStream(np.arange(rows * (seg + 1) + 7) % vocab)
        task = TaskData("lm_stream", {"train": stream, "valid": stream, "test": stream}, vocab_size=vocab)
        task = family.for_run(task, run)
        assert collate(task, "train", split_batches(task, "train", 0, 0, 0)[0]).tensors["tokens"].shape == (rows, seg)
        assert collate(task, "test", split_batches(task, "test", 0, 0, 0)[0]).tensors["tokens"].shape == (10, seg)
        for placement in ("post", "pre"):
            cell = runs[f"{dataset}/{placement}/rbn/seed1"]
            torch.manual_seed(0)
            model = family.build_model(ModelOptions(**dict(cell["model"], **shrink)), task)
            assert isinstance(model, StreamingTransformerXL) and tuple(model.u.shape) == heads
            assert model.xl.mem_len == seg and model.xl.evaluation_lengths() == (seg, seg)
            built = {n: type(m) for n, m in model.named_modules() if n.endswith("norm")}
            assert {v for k, v in built.items() if "layers" in k} == {NORMS["rbn"]}
            assert len(built) == 4 + (placement == "pre")
            if placement == "pre":  # Transformer-XL's pre_lnorm has no final norm
                assert built["decoder.final_norm"] is NORMS["none"]
        expected_bounds = [0, 20000, 40000, 200000, vocab] if dataset == "wikitext103" else [0, vocab]
        assert model.embed.bounds == expected_bounds and not model.embed.projections  # div_val 1

    for dataset, chars in (("conll2003", True), ("resume", False)):
        run = runs[f"{dataset}/post/bn/seed1"]
        assert run["task"] == "tagging" and run["model"]["crf"] and run["optim"]["label_smoothing"] == 0
        cfg = dict(run, model=dict(run["model"], **shrink, n_heads=2))
        task = synthetic_task("tagging", n_train=16, n_valid=4, n_test=4)
        family = get_family("tagging")
        task = family.for_run(task, cfg)
        model = family.build_model(ModelOptions(**cfg["model"]), task)
        assert isinstance(model, CRFTagger) and (model.chars is not None) == chars
        assert task.tag_scheme == "bioes" and task.label_names == ["O", "B-ENT", "I-ENT", "S-ENT", "E-ENT"]
        assert model.fc_drop.p == 0.4 and model.word_dropout == (0.02 if chars else 0.01)
        assert collate(task, "train", np.arange(5)).n_targets == 5  # RBN's penalty: per sentence
