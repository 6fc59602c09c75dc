"""`make figures`: a configuration's statistics, tables, figures, notebooks and report regenerated from its
committed tidy tables (`--config from_tidy=true`), with no run, probe, data or tid.csv; on the scale
study (config/scale.yaml, scale_study/) the tables come out byte-identical to the committed ones."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from normlab.analysis import contract
from normlab.analysis.figures import read_stamp
from normlab.provenance import config_digest
from normlab.workflow import PATHS

from .snakemake_run import ROOT, snakemake

SCALE_CONFIG = ["config/scale.yaml", "config/scale_seed1.yaml"]  # what scale_study/ holds (its provenance)
WORKDIR = "scale_study"


def test_a_config_without_committed_tidy_tables_names_the_files_and_the_fix(tmp_path):
    result = snakemake("-n", "--cores", "1", "--config", "from_tidy=true", "--configfile", "config/test.yaml",
                       workdir=tmp_path, timeout=300)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "from_tidy: configuration 'test' has no committed tidy tables" in out
    for name in contract.committed_tidy_tables():
        assert f"{PATHS.tidy}/{name}.csv" in out
    assert f"{PATHS.tidy}/tid.csv" not in out  # not committed (too big): never asked for
    assert "make run CONFIG=" in out


def _checkout_copy(dest: Path) -> str:
    """The working tree's tracked and unignored files (what a fresh clone of it holds), committed in a
    repository of their own; returns its commit."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = dict(cwd=dest, check=True, capture_output=True)
    subprocess.run(["git", "init", "-q"], **git)
    subprocess.run(["git", "add", "-A"], **git)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"], **git)
    return subprocess.run(["git", "rev-parse", "HEAD"], **git, text=True).stdout.strip()


def _make_figures(repo: Path, config: list[str]) -> dict[str, str]:
    """The documented command on the copy, with this venv (``-o``: not rebuilt for the copy's newer
    files); returns the environment it ran in (this venv first on PATH) for later commands."""
    venv = Path(sys.prefix)
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    made = subprocess.run(["make", "figures", f"VENV={venv}", "-o", f"{venv}/.installed", "CORES=2",
                           f"CONFIG={' '.join(config)}"], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=900)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    return env


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _redrawn_differently(committed: dict[Path, bytes], repo: Path) -> list[str]:
    """The committed PNG figures whose redraw differs in pixels (a stamp, in the metadata, may differ):
    a committed figure must be what the code draws from the committed tables."""
    return [str(rel) for rel, png in committed.items()
            if rel.suffix == ".png" and not np.array_equal(_pixels(png), _pixels((repo / rel).read_bytes()))]


@pytest.mark.slow  # ~95 s on 2 cores: statistics, tables, 14 figures, five notebooks, the report
def test_make_figures_regenerates_the_scale_study_byte_identical_from_its_tidy_tables(tmp_path):
    repo = tmp_path / "p"
    commit = _checkout_copy(repo)
    committed = {p.relative_to(repo): p.read_bytes() for p in (repo / WORKDIR).rglob("*") if p.is_file()}
    assert not (repo / WORKDIR / PATHS.tidy / "tid.csv").exists() and not (repo / WORKDIR / "results/runs").exists()
    started = time.time()
    env = _make_figures(repo, SCALE_CONFIG)
    print(f"make figures: {time.time() - started:.0f} s")

    # every committed table and statistic, byte for byte; the runs' provenance left alone
    tables = [p for p in committed if p.parts[1] in ("paper_tables", "results")]
    assert len(tables) > 30
    differ = [str(p) for p in tables if (repo / p).read_bytes() != committed[p]]
    assert not differ, f"regenerated tables differ from the committed ones: {differ}"
    assert "paper_tables/datasets.md" in {str(p.relative_to(WORKDIR)) for p in committed}  # kept, not rebuilt
    # every figure (the scale study's and the papers'), with this commit and the configuration's hash
    digest = config_digest([repo / c for c in SCALE_CONFIG])["resolved_sha256"]
    figures = [*contract.FIGURES, *contract.scale_figures(["steps", "depth", "width", "lr", "placement",
                                                           "sentence_length"])]
    for name in figures:
        for ext in ("pdf", "png"):
            path = repo / WORKDIR / "figures" / f"{name}.{ext}"
            assert path.stat().st_mtime >= started, path
            assert read_stamp(path) == {"commit": commit, "dirty": "false", "config_sha256": digest}, path
    assert not _redrawn_differently(committed, repo), "committed figures are not what the code draws"
    # the notebooks: executed, relative paths only, the standard kernel, and their HTML
    for name in contract.notebooks(True):
        ipynb = repo / WORKDIR / "notebooks" / "executed" / f"{name}.ipynb"
        text = ipynb.read_text()
        assert str(tmp_path) not in text and "/work/" not in text, name
        assert json.loads(text)["metadata"]["kernelspec"]["name"] == "python3"
        assert (ipynb.with_suffix(".html")).stat().st_size > 10_000
    assert "matches the committed table: True" in (repo / WORKDIR / "notebooks/executed/scale_study.ipynb").read_text()
    # the scale-study notebook as a user runs it from the clone: no parameters, its own defaults
    normlab = str(Path(sys.prefix) / "bin" / "normlab")
    assert subprocess.run([normlab, "notebooks", "scale_study", "--out", str(tmp_path / "own")],
                          cwd=repo, env=env, capture_output=True, timeout=300).returncode == 0
    own = (tmp_path / "own" / "scale_study.ipynb").read_text()
    assert "matches the committed table: True" in own and "tidy tables: scale_study/results/tidy" in own

    # the report of that DAG: the notebooks as HTML, captions with the key numbers of the statistics
    report = tmp_path / "report.html"
    built = subprocess.run(["snakemake", "--report", str(report), "--config", "from_tidy=true",
                            "--configfile", *SCALE_CONFIG], cwd=repo, env=env, capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    html = report.read_text()
    assert html.count('"mime_type": "text/html"') == len(contract.notebooks(True))
    assert "Key number" in html and "seeds 1 (81 runs: 81 completed)" in html
    assert "Spearman" in html  # tid_vs_gap's key number, from correlations.csv


@pytest.mark.slow  # ~60 s on 2 cores
def test_make_figures_regenerates_the_default_tables_byte_identical_from_its_tidy_tables(tmp_path):
    """The default configuration's committed tidy tables (tid.csv included) give back its committed
    statistics and paper tables byte for byte, and stamped figures."""
    repo = tmp_path / "p"
    commit = _checkout_copy(repo)
    tables = [p for d in ("paper_tables", "results/stats") for p in (repo / d).rglob("*") if p.is_file()]
    committed = {p: p.read_bytes() for p in tables}
    figures = {p.relative_to(repo): p.read_bytes() for p in (repo / "figures").glob("*.png")}
    assert len(figures) >= 7
    assert len(committed) > 20 and not (repo / "results/runs").exists()
    _make_figures(repo, ["config/default.yaml"])
    differ = [str(p.relative_to(repo)) for p in committed if p.read_bytes() != committed[p]]
    assert not differ, f"regenerated tables differ from the committed ones: {differ}"
    assert read_stamp(repo / "figures" / "tid_curves.png")["commit"] == commit
    assert not _redrawn_differently(figures, repo), "committed figures are not what the code draws"
