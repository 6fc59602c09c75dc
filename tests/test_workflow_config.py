"""normlab.workflow: the grid, each cell's run config, and the errors a bad config gets."""

import copy
from pathlib import Path

import pytest
import yaml

from normlab.workflow import Cell, WorkflowConfigError, cells, load, manifest_csv, run_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflows/schemas/config.schema.yaml"


def config(name="test"):
    return yaml.safe_load((ROOT / f"config/{name}.yaml").read_text())


@pytest.mark.parametrize(
    ("name", "n_cells"),
    [
        # counted by hand from each file's grids: blocks crossed, then the shared cells once
        # ln on wnut16/post is in both blocks; the sweep: 2 depth levels x 2 norms x 2 seeds
        ("test", (2 * 2 * 4 + 1 * 1 * 5 - 1) * 2 + 2 * 2 * 2),
        # base + 2 levels of steps on 3 datasets, 2 levels of depth/width/lr/length and 1 of placement on
        # 2 datasets, each x 3 norms x 3 seeds
        ("scale", (3 * 3 + 2 * (2 + 2 + 2 + 1 + 2)) * 3 * 3),
        # bn_rbn 2 datasets x 2 x 3, powernorm 1 x 2 x 1, ln_family 1 x 1 x 5 (ln shared with bn_rbn), each
        # x 5 seeds; pipeline_check 4 datasets x 1 x 2 at one seed
        ("default", (2 * 2 * 3 + 1 * 2 * 1 + 1 * 1 * 5 - 1) * 5 + 4 * 1 * 2 * 1),
        # bn_rbn; ln_family (IWSLT14's LN-family variant + 3 datasets sharing ln with bn_rbn); ln_family_code
        # (Pre-Norm only); modern (ln, bn, rbn shared with bn_rbn)
        ("paper", (10 * 2 * 4 + (1 * 2 * 5 + 3 * 2 * 5 - 3 * 2) + 1 * 1 * 5 + (5 * 2 * 5 - 5 * 2 * 3)) * 5),
    ],
)
def test_every_shipped_config_loads_and_has_the_grid_it_describes(name, n_cells):
    cfg, cell_list, run_configs = load(config(name), SCHEMA)
    assert len(cell_list) == len(set(cell_list)) == len(run_configs) == n_cells


def test_a_cell_in_two_grids_is_one_run_listed_under_both():
    cfg, cell_list, _ = load(config(), SCHEMA)
    shared = [c for c in cell_list if c.run_id == "wnut16/post/ln/seed1"]
    assert len(shared) == 1 and shared[0].grids == ("bn_rbn", "ln_family")


def test_norm_options_follow_the_placement_and_overrides_hit_only_their_cell():
    cfg, _, run_configs = load(config(), SCHEMA)
    assert run_configs["wnut16/post/rbn/seed1"]["model"]["norm_options"] == {"penalty_mean": 60, "penalty_var": 0}
    assert run_configs["wnut16/pre/rbn/seed1"]["model"]["norm_options"] == {"penalty_mean": 0.1, "penalty_var": 0.01}
    assert run_configs["wnut16/post/bn/seed1"]["model"]["norm_options"] == {}
    assert run_configs["wnut16/post/bn/seed2"]["optim"]["lr"] == 1e30  # the forced divergence
    assert run_configs["wnut16/post/bn/seed1"]["optim"]["lr"] == 1e-3
    rc = run_configs["fashion_mnist/pre/powernorm/seed2"]
    assert (rc["task"], rc["seed"], rc["model"]["norm"], rc["model"]["placement"]) == ("image", 2, "powernorm", "pre")
    assert rc["data"] == {
        "source": "normlab",
        "name": "fashion_mnist",
        "options": {"cache": "data_cache", "max_examples": 300},
    }


def test_manifest_has_one_row_per_cell_with_its_paths():
    cfg, cell_list, _ = load(config(), SCHEMA)
    text = manifest_csv(
        cfg,
        cell_list,
        {
            "run_dir": "runs/{dataset}/{placement}/{norm}/seed{seed}",
            "probe_dir": "p/{dataset}",
            "benchmark": "b/{norm}.tsv",
        },
    )
    lines = text.splitlines()
    assert lines[0].startswith("run_id,config_name,scale,task,dataset,placement,norm,seed,grids,run_dir")
    assert len(lines) == 1 + len(cell_list)
    assert any(
        line.startswith("wnut16/post/ln/seed1,test,")
        and "bn_rbn;ln_family,runs/wnut16/post/ln/seed1,p/wnut16,b/ln.tsv" in line
        for line in lines
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c["grids"]["bn_rbn"].update(norm=["ln"]),
            "unknown key(s) grids.bn_rbn.norm; valid keys: datasets, norms, placements, seeds",
        ),
        (
            lambda c: c["grids"]["bn_rbn"]["norms"].append("batchnorm"),
            "'batchnorm' is not valid; valid values: ln, ln_simple",
        ),
        (
            lambda c: c["grids"]["bn_rbn"]["datasets"].append("iwslt"),
            "'iwslt' is not valid; valid values: fashion_mnist",
        ),
        (
            lambda c: c["grids"]["bn_rbn"]["datasets"].append("ptb"),
            "grids.bn_rbn.datasets: ptb not configured under `datasets`",
        ),
        (
            lambda c: c["grids"]["bn_rbn"].update(placements=["middle"]),
            "'middle' is not valid; valid values: post, pre",
        ),
        (lambda c: c.pop("seeds"), "'seeds' is a required property"),
        (lambda c: c["overrides"][0].pop("reason"), "'reason' is a required property"),
        (
            lambda c: (
                c["datasets"]["wnut16"]["model"].update(n_heads=3)
                if "model" in c["datasets"]["wnut16"]
                else c["datasets"]["wnut16"].update(model={"n_heads": 3})
            ),
            "grid cell wnut16/post/ln/seed1 (grids: bn_rbn, ln_family) cannot run: "
            "model.d_model=16 must be a multiple of model.n_heads=3",
        ),
        (lambda c: c["norm_options"].update(bn={"all": {"penalty_mean": 1}}), "grid cell wnut16/post/bn/seed1"),
        (lambda c: c["datasets"]["wnut16"].update(train={"max_tokns": 5}), "unknown key(s) train.max_tokns"),
    ],
)
def test_bad_configs_fail_naming_the_key_or_cell_and_the_valid_values(edit, message):
    cfg = copy.deepcopy(config())
    edit(cfg)
    with pytest.raises(WorkflowConfigError) as err:
        load(cfg, SCHEMA)
    assert message in str(err.value)


def test_cells_are_the_union_of_the_grids_in_a_stable_order():
    cfg = {
        "seeds": [1, 2],
        "grids": {
            "a": {"datasets": ["x"], "placements": ["post"], "norms": ["ln", "bn"]},
            "b": {"datasets": ["x"], "placements": ["post"], "norms": ["bn"], "seeds": [3]},
        },
    }
    assert cells(cfg) == [
        Cell("x", "post", "ln", 1),
        Cell("x", "post", "ln", 2),
        Cell("x", "post", "bn", 1),
        Cell("x", "post", "bn", 2),
        Cell("x", "post", "bn", 3),
    ]


def test_run_config_merges_defaults_dataset_norm_options_and_overrides_in_that_order():
    cfg = {
        "name": "t",
        "scale": "s",
        "seeds": [1],
        "data_cache": "dc",
        "run_defaults": {"optim": {"lr": 1.0}, "train": {"max_steps": 5}},
        "datasets": {"wnut16": {"optim": {"lr": 2.0}, "norm_options": {"rbn": {"post": {"penalty_mean": 3}}}}},
        "norm_options": {"rbn": {"all": {"penalty_mean": 1, "penalty_var": 1}}},
        "overrides": [{"where": {"seed": 1, "norm": "rbn"}, "set": {"train": {"max_steps": 7}}, "reason": "r"}],
        "grids": {},
    }
    rc = run_config(cfg, Cell("wnut16", "post", "rbn", 1))
    assert rc["optim"]["lr"] == 2.0 and rc["train"]["max_steps"] == 7
    assert rc["model"]["norm_options"] == {"penalty_mean": 3, "penalty_var": 1}


def _sweep_config(**factor_levels):
    cfg = config()
    cfg["sweep"] = {"datasets": ["wnut16", "fashion_mnist"], "norms": ["ln", "bn"], "placement": "post",
                    "seeds": [1], "factors": factor_levels}
    return cfg


def test_a_sweep_is_one_setting_per_level_with_the_base_point_shared():
    from normlab.workflow import sweep_points

    cfg, cell_list, runs = load(_sweep_config(
        depth={"levels": {1: {}, 3: {"model": {"n_layers": 3}}}},
        placement={"datasets": ["wnut16"], "levels": {"post": {}, "pre": {"placement": "pre"}}},
    ), SCHEMA)
    swept = {c.run_id for c in cell_list if "sweep" in c.grids}
    assert swept == {f"{d}/{p}/{n}/seed1" for n in ("ln", "bn") for d, p in [
        ("wnut16.base", "post"), ("wnut16.depth-3", "post"), ("wnut16.placement-pre", "pre"),
        ("fashion_mnist.base", "post"), ("fashion_mnist.depth-3", "post")]}
    assert runs["wnut16.depth-3/post/bn/seed1"]["model"]["n_layers"] == 3
    assert runs["wnut16.base/post/bn/seed1"]["model"]["n_layers"] == 1
    assert runs["wnut16.depth-3/post/bn/seed1"]["data"]["name"] == "wnut16"  # the setting reads its dataset
    pre = runs["wnut16.placement-pre/pre/bn/seed1"]
    assert pre["model"]["placement"] == "pre" and pre["train"] == runs["wnut16.base/post/bn/seed1"]["train"]
    points = sweep_points(cfg)
    assert [(p["setting"], p["factor"], p["level"], p["is_base"]) for p in points if p["corpus"] == "wnut16"] == [
        ("wnut16.base", "depth", "1", True), ("wnut16.depth-3", "depth", "3", False),
        ("wnut16.base", "placement", "post", True), ("wnut16.placement-pre", "placement", "pre", False)]


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ({1: {"model": {"n_layers": 1}}, 2: {"model": {"n_layers": 2}}}, "exactly one level must be the base point"),
        ({1: {}, 2: {}}, "exactly one level must be the base point"),
        ({1: {}, "a/b": {"model": {"n_layers": 2}}}, "must be letters, digits"),
    ],
)
def test_a_sweep_without_one_base_level_or_with_a_bad_label_is_refused(levels, message):
    with pytest.raises(WorkflowConfigError, match=message):
        load(_sweep_config(depth={"levels": levels}), SCHEMA)


def test_a_sweep_level_that_a_model_cannot_run_is_named_at_load_time():
    with pytest.raises(WorkflowConfigError, match=r"wnut16\.width-5/post/ln/seed1"):
        load(_sweep_config(width={"levels": {16: {}, 5: {"model": {"d_model": 5}}}}), SCHEMA)


def test_an_overlay_merges_over_the_config_and_a_missing_one_is_named(tmp_path):
    from normlab.workflow import load_file

    overlay = tmp_path / "seed1.yaml"
    overlay.write_text("seeds: [1]\n")
    _, cell_list, _ = load_file([ROOT / "config/test.yaml", overlay], SCHEMA)
    assert {c.seed for c in cell_list} == {1}
    with pytest.raises(WorkflowConfigError, match=r"workflow config .*nope\.yaml does not exist"):
        load_file([ROOT / "config/test.yaml", tmp_path / "nope.yaml"], SCHEMA)
