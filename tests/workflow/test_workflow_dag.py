"""The Snakemake DAG: lint, dry runs of every shipped configuration, bad input at parse time."""

import pytest
import yaml

from .snakemake_run import ANALYSIS_JOBS, ROOT, SWEEP_ANALYSIS_JOBS, job_counts, snakemake

# Cells of each configuration's grid, counted by hand from the YAML files (tests/test_workflow_config.py).
CELLS = {"test": 48, "default": 98, "paper": 695, "scale": 243}


def test_lint_is_clean():
    r = snakemake("--lint", "--configfile", "config/test.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Congratulations, your workflow is in a good condition" in r.stdout + r.stderr


@pytest.mark.parametrize("name", list(CELLS))
def test_dry_run_builds_one_train_and_one_probe_job_per_cell_and_every_paper_output(name, tmp_path):
    r = snakemake(
        "-n", "--configfile", f"config/{name}.yaml", "--config", f"data_cache={tmp_path}/cache", workdir=tmp_path
    )
    assert r.returncode == 0, r.stdout + r.stderr
    counts = job_counts(r.stdout)
    raw = yaml.safe_load((ROOT / f"config/{name}.yaml").read_text())
    sweep = raw.get("sweep")
    n_datasets = len(  # registered datasets: a variant (iwslt14_de_en.ln_family) reads its dataset's data
        {d.split(".")[0] for g in raw.get("grids", {}).values() for d in g["datasets"]}
        | set(sweep["datasets"] if sweep else [])
    )
    analysis = {**SWEEP_ANALYSIS_JOBS, "sweep_points": 1} if sweep else ANALYSIS_JOBS
    assert counts == {
        "fetch": n_datasets,
        "prepare": n_datasets,
        "run_config": CELLS[name],
        "train": CELLS[name],
        "probe": CELLS[name],
        "manifest": 1,
        "datasets_table": 1,
        **analysis,
        "total": 3 * CELLS[name] + 2 * n_datasets + 2 + sum(analysis.values()),
    }


def test_the_slurm_profile_dry_runs_from_the_repository_root(tmp_path):
    r = snakemake(
        "-n",
        "--profile",
        "slurm",
        "--configfile",
        "config/test.yaml",
        "--config",
        f"data_cache={tmp_path}/cache",
        workdir=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert job_counts(r.stdout)["train"] == CELLS["test"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["grids"]["bn_rbn"].update(norm=["ln"]), "unknown key(s) grids.bn_rbn.norm"),
        (lambda c: c["grids"]["bn_rbn"]["datasets"].append("imbd"), "'imbd' is not valid; valid values: fashion_mnist"),
        (
            lambda c: c["datasets"]["wnut16"].update(model={"n_heads": 3}),
            "grid cell wnut16/post/ln/seed1 (grids: bn_rbn, ln_family) cannot run: model.d_model=16 must be a multiple",
        ),
    ],
)
def test_bad_configs_fail_at_parse_time_with_the_key_and_the_fix(edit, message, tmp_path):
    cfg = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    edit(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "--configfile", str(path), workdir=tmp_path)
    assert r.returncode != 0
    assert message in r.stdout + r.stderr
    assert "workflows/schemas/config.schema.yaml" in r.stdout + r.stderr
    assert not (tmp_path / "results").exists()  # nothing ran
