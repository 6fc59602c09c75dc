"""The test configuration end to end, locally: every table, figure and notebook; a second run does
nothing; deleting one run re-runs only what depends on it; a diverged cell is marked, not dropped;
an interrupted workflow resumes and loses no finished run.  Real corpora (fetched once into the
repository's data_cache/), so these are `network` + `slow`."""

import json
import signal
import subprocess
import time

import pandas as pd
import pytest

from normlab.analysis import contract

from .snakemake_run import BIN, ROOT, SWEEP_ANALYSIS_JOBS, job_counts, snakemake

pytestmark = [pytest.mark.slow, pytest.mark.network]

CACHE = ROOT / "data_cache"
TABLES = contract.PAPER_TABLES
FIGURES = contract.FIGURES
NOTEBOOKS = contract.notebooks(sweep=True)
SCALE_FIGURES = contract.scale_figures(["depth"])  # config/test.yaml sweeps one factor
ARGS = ("--configfile", "config/test.yaml", "--config", f"data_cache={CACHE}")
DIVERGED = "wnut16/post/bn/seed2"  # forced by an override in config/test.yaml
REDO = "wnut16/pre/rbn/seed1"


def outputs(root):
    return (
        [root / f"paper_tables/{t}.{ext}" for t in TABLES for ext in ("md", "tex", "csv")]
        + [root / "paper_tables" / name for name in contract.CLAIMS_OUTPUTS]
        + [root / "paper_tables/datasets.md"]
        + [root / f"figures/{f}.{ext}" for f in FIGURES for ext in ("pdf", "png")]
        + [root / f"notebooks/executed/{nb}.ipynb" for nb in NOTEBOOKS]
        + [root / f"paper_tables/{contract.SCALE_TABLE}.{ext}" for ext in ("md", "csv")]
        + [root / f"figures/{f}.{ext}" for f in SCALE_FIGURES for ext in ("pdf", "png")]
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    work = tmp_path_factory.mktemp("workflow")
    started = time.time()
    r = snakemake("--cores", "2", "--keep-going", *ARGS, workdir=work)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    print(f"test configuration end to end: {time.time() - started:.0f} s")
    return work


def finals(work):
    return {p: p.stat().st_mtime_ns for p in (work / "results/runs").glob("*/*/*/seed*/final.json")}


def test_every_table_figure_and_notebook_is_produced(finished):
    missing = [str(p) for p in outputs(finished) if not p.is_file() or p.stat().st_size == 0]
    assert not missing
    for nb in NOTEBOOKS:
        cells = json.loads((finished / f"notebooks/executed/{nb}.ipynb").read_text())["cells"]
        assert not any(o.get("output_type") == "error" for c in cells for o in c.get("outputs", []))


def test_the_sweep_gets_its_table_figures_and_claims_section(finished):
    table = pd.read_csv(finished / "paper_tables/scale_study.csv", dtype={"level": str})
    assert table[["corpus", "factor", "level"]].values.tolist() == [["wnut16", "depth", "1"], ["wnut16", "depth", "2"]]
    assert table["bn_tid"].notna().all() and table["bn_floor"].notna().all() and (table["bn_gap_n"] == 2).all()
    assert table["bn_ratio_first"].notna().all() and table["testable"].notna().all()
    assert "## Scale study: at what scale does BN start to fail, and why" in (
        finished / "paper_tables/claims.md").read_text()


def test_the_diverged_cell_is_marked_in_the_tables_and_the_claims(finished):
    runs = pd.read_csv(finished / "results/tidy/runs.csv")
    assert runs.set_index("run_id").loc[DIVERGED, "status"] == "diverged"
    assert (runs.status == "completed").sum() == 47
    assert "1 diverged" in (finished / "paper_tables/table2_bn_rbn.md").read_text()
    assert "1 diverged" in (finished / "paper_tables/claims.md").read_text()


def test_a_second_run_does_nothing(finished):
    r = snakemake("-n", *ARGS, workdir=finished)
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr, r.stdout[-2000:]


def test_deleting_one_run_reruns_only_what_depends_on_it_and_an_interrupted_run_loses_nothing(finished):
    before = finals(finished)
    redo = finished / "results/runs" / REDO / "final.json"
    old = json.loads(redo.read_text())
    redo.unlink()
    # Snakemake does not regenerate a missing file whose dependants are up to date: name it as a target
    # (docs/workflow.md, "One cell"); then only what depends on it runs.
    target = str(redo.relative_to(finished))
    r = snakemake("-n", target, "all", *ARGS, workdir=finished)  # targets first: --config takes the rest
    # the trivial baselines depend on the prepared data only: they do not re-run
    rerun = {k: v for k, v in SWEEP_ANALYSIS_JOBS.items() if k != "baselines"}
    assert job_counts(r.stdout) == {
        "train": 1,
        "probe": 1,
        **rerun,
        "total": 2 + sum(rerun.values()),
    }, r.stdout[-3000:]

    # Interrupt the workflow (Ctrl-C) once that training job has started, then resume.
    log = finished / "logs/train" / f"{REDO}.log"
    log.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            str(BIN / "snakemake"),
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(finished),
            "--cores",
            "1",
            target,
            "all",
            *ARGS,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"PATH": f"{BIN}:/usr/bin:/bin"},
    )
    deadline = time.time() + 300
    while not log.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=300)
    r = snakemake("--cores", "2", "--rerun-incomplete", target, "all", *ARGS, workdir=finished)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    after = finals(finished)
    assert {p: t for p, t in after.items() if p != redo} == {p: t for p, t in before.items() if p != redo}
    new = json.loads(redo.read_text())
    assert new["test"] == old["test"] and new["steps"] == old["steps"]  # resumed from its checkpoint: same result
    assert "resuming" in log.read_text()
    assert "Nothing to be done" in snakemake("-n", *ARGS, workdir=finished).stdout
