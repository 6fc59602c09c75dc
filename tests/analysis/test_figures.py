"""normlab figures: every file written from a synthetic tidy fixture, from empty and absent tables, and
the derived numbers the figures plot (floor, late TID, BN−LN gap) on planted effects."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from normlab.analysis import figures as F
from normlab.cli import main as normlab_main

from .tidy_fixture_figures import DIVERGED, build_tables, write_correlations, write_tidy

SMALL = dict(datasets=["fashion_mnist", "bible_es_en"], norms=["ln", "ln_simple", "adanorm", "bn", "rbn"],
             seeds=(0, 1), steps=800, every=100)


@pytest.fixture(scope="module")
def tables():
    return build_tables(**SMALL)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tables):
    root = tmp_path_factory.mktemp("tidy")
    write_tidy(root / "tidy", tables)
    write_correlations(root / "stats")
    return F.load_inputs(root / "tidy", root / "stats")


def _assert_all_written(out):
    for name in F.FIGURES:
        pdf, png = out / f"{name}.pdf", out / f"{name}.png"
        assert pdf.read_bytes()[:5] == b"%PDF-", name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert pdf.stat().st_size > 5000 and png.stat().st_size > 5000, name
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_every_figure_from_the_fixture(tmp_path, tables):
    write_tidy(tmp_path / "tidy", tables)
    written = F.make_figures(tmp_path / "tidy", tmp_path / "stats-absent", tmp_path / "figures")
    assert len(written) == 2 * len(F.FIGURES)
    _assert_all_written(tmp_path / "figures")


def test_every_figure_without_any_table(tmp_path):
    (tmp_path / "tidy").mkdir()
    assert normlab_main(["figures", "--tidy", str(tmp_path / "tidy"), "--out", str(tmp_path / "figures")]) == 0
    _assert_all_written(tmp_path / "figures")
    inputs = F.load_inputs(tmp_path / "tidy")
    assert sorted(inputs.absent) == sorted(f"{n}.csv" for n in F.TIDY_TABLES)
    for name, fn in F.FIGURE_FUNCTIONS.items():
        texts = [t.get_text() for ax in fn(inputs).axes for t in ax.texts]
        assert any(F.NO_RUNS in t.replace("\n", " ") for t in texts), name


def test_empty_tables_and_dropped_tables(tmp_path, tables):
    """Header-only CSVs (0 rows), and a run set whose TID/decomposition tables are absent."""
    for name, frame in tables.items():
        frame.iloc[:0].to_csv((tmp_path / f"{name}.csv"), index=False)
    inputs = F.load_inputs(tmp_path)
    assert inputs.absent == [] and len(inputs.tid) == 0
    F.make_figures(tmp_path, None, tmp_path / "empty", names=("tid_curves", "eval_mode_gap"))
    write_tidy(tmp_path / "partial", tables, drop=("tid", "tid_decomposition", "conditioning"))
    F.make_figures(tmp_path / "partial", None, tmp_path / "partial_figs", names=("tid_curves", "conditioning",
                                                                                  "training_curves"))
    for name in ("tid_curves", "conditioning", "training_curves"):
        assert (tmp_path / "partial_figs" / f"{name}.png").stat().st_size > 5000


def test_bad_table_names_the_file_and_the_fix(tmp_path):
    pd.DataFrame({"run_id": ["a"], "value": [1.0]}).to_csv(tmp_path / "tid.csv", index=False)
    with pytest.raises(ValueError, match=r"tid\.csv lacks column.*normlab collect"):
        F.load_inputs(tmp_path)


def test_noise_floor_measured_first_then_theory(inputs, tables, tmp_path):
    floors = F.noise_floors(inputs, "bible_es_en", "pre", "bn", "mean_tid")
    assert [label.split(",")[1].strip().split(" ")[0] for _, label, _ in floors] == ["measured", "theory"]
    assert floors[1][0] == pytest.approx(1 / math.sqrt(1200))
    # without the probe's table: 1/sqrt(tokens per batch) from runs.csv, and the Gaussian var floor
    write_tidy(tmp_path, tables, drop=("tid_decomposition",))
    bare = F.load_inputs(tmp_path)
    (value, label, _), = F.noise_floors(bare, "fashion_mnist", "post", "bn", "mean_tid")
    assert value == pytest.approx(1 / math.sqrt(2176)) and "runs.csv" in label
    (value, label, _), = F.noise_floors(bare, "fashion_mnist", "post", "bn", "var_tid")
    assert value == pytest.approx(1 / math.sqrt(2 * 2176)) and "Gaussian" in label


def test_planted_tid_and_gap(inputs):
    late = F.late_tid_table(inputs).set_index(["dataset", "placement"])
    # planted: image TID ends on its floor, translation TID grows far above it
    assert late.loc[("fashion_mnist", "post"), "tid_over_floor"] == pytest.approx(1.0, abs=0.2)
    assert late.loc[("bible_es_en", "post"), "tid_over_floor"] > 5
    # the diverged seed is not averaged into the late TID
    assert late.loc[("bible_es_en", "post"), "tid_n"] == 1
    assert late.loc[("bible_es_en", "pre"), "tid_n"] == 2
    points = F.tid_gap_points(inputs).set_index(["dataset", "placement"])
    assert points.loc[("bible_es_en", "pre"), "gap"] < -3 < 0 < points.loc[("fashion_mnist", "pre"), "gap"]


def test_gap_is_oriented_by_higher_is_better():
    """A lower-is-better metric (perplexity): BN with lower ppl than LN is a positive gap."""
    rows = []
    for norm, value in (("bn", 90.0), ("ln", 100.0)):
        rows.append(dict(run_id=f"d/post/{norm}/seed0", config_name="t", scale="laptop", task="lm", dataset="d",
                         placement="post", norm=norm, seed=0, split="test", stats="population", metric="ppl",
                         value=value, primary=True, higher_is_better=False))
    empty = {n: pd.DataFrame(columns=F.ID_COLUMNS + c) for n, c in F.TIDY_TABLES.items()}
    inputs = F.Inputs(**(empty | {"scores": pd.DataFrame(rows)}))
    assert F.bn_ln_gap(inputs)["gap_pct"].tolist() == [pytest.approx(10.0)]


def _diverged_markers(fig):
    return [line for ax in fig.axes for line in ax.get_lines()
            if line.get_marker() == "x" and line.get_color() == F.DIVERGED_COLOR]


def test_diverged_runs_are_marked_not_dropped(inputs, tables):
    fig = F.tid_curves(inputs)
    assert _diverged_markers(fig), "the diverged BN run should end in a red x"
    assert any("1 diverged" in t.get_text() for ax in fig.axes for t in ax.texts)
    assert _diverged_markers(F.training_curves(inputs))
    # the same tables with the run completed: no marker
    runs = tables["runs"].copy()
    runs.loc[runs["status"] == "diverged", "status"] = "completed"
    healed = F.Inputs(**{n: getattr(inputs, n) for n in F.TIDY_TABLES} | {"runs": runs})
    assert not _diverged_markers(F.tid_curves(healed))
    dataset, placement, norm, seed = DIVERGED
    assert f"{dataset}/{placement}/{norm}/seed{seed}" in set(inputs.runs.loc[inputs.runs["status"] == "diverged",
                                                                             "run_id"])


def test_subtitle_counts_missing_and_diverged_runs_and_scale():
    tables = build_tables(datasets=["brown_pos", "bible_es_en"], norms=["bn", "rbn"], seeds=(0, 1, 2), steps=300)
    empty = {n: pd.DataFrame(columns=F.ID_COLUMNS + c) for n, c in F.TIDY_TABLES.items()}
    text = F._subtitle(F.Inputs(**(empty | {"runs": tables["runs"]})))
    assert "(laptop)" in text and "1 diverged, 1 missing run(s)" in text and "3 seeds per cell" in text


def test_correlation_text_reads_the_stats_columns(inputs):
    text = F._correlation_text(inputs.correlations)
    assert "post mean_tid: Spearman ρ = -0.82 [-0.97, -0.21], p = 0.023, n = 7" in text
    assert "absent" in F._correlation_text(None)


def test_save_is_atomic(tmp_path, inputs, monkeypatch):
    fig = F.tid_vs_gap(inputs)
    F.save_figure(fig, tmp_path, "x")
    before = (tmp_path / "x.png").read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        F.save_figure(fig, tmp_path, "x")
    assert (tmp_path / "x.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pdf", "x.png"]
