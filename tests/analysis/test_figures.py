"""normlab figures: every file written from a synthetic fixture (through normlab stats), from empty and
absent tables; the figures draw the statistics tables' numbers (read back from the drawn artists)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from normlab.analysis import figures as F
from normlab.analysis.contract import TIDY_TABLES
from normlab.analysis.plots import style, tid_vs_gap
from normlab.cli import main as normlab_main

from .tidy_fixture_figures import DIVERGED, build_tables, write_stats, write_tidy

SMALL = dict(datasets=["fashion_mnist", "bible_es_en", "brown_lm"], norms=["ln", "ln_simple", "adanorm", "bn", "rbn"],
             seeds=(0, 1, 2), steps=800, every=100)


@pytest.fixture(scope="module")
def tables():
    return build_tables(**SMALL)


@pytest.fixture(scope="module")
def root(tmp_path_factory, tables):
    root = tmp_path_factory.mktemp("tidy")
    write_tidy(root / "tidy", tables)
    write_stats(root / "tidy", root / "stats")
    return root


@pytest.fixture(scope="module")
def inputs(root):
    return F.load_inputs(root / "tidy", root / "stats")


def _assert_all_written(out):
    for name in F.FIGURES:
        pdf, png = out / f"{name}.pdf", out / f"{name}.png"
        assert pdf.read_bytes()[:5] == b"%PDF-", name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert pdf.stat().st_size > 5000 and png.stat().st_size > 5000, name
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_every_figure_from_the_fixture(root, tmp_path):
    written = F.make_figures(root / "tidy", root / "stats", tmp_path / "figures")
    assert len(written) == 2 * len(F.FIGURES)
    _assert_all_written(tmp_path / "figures")


def test_every_figure_without_any_table(tmp_path):
    (tmp_path / "tidy").mkdir()
    assert normlab_main(["figures", "--tidy", str(tmp_path / "tidy"), "--out", str(tmp_path / "figures")]) == 0
    _assert_all_written(tmp_path / "figures")
    inputs = F.load_inputs(tmp_path / "tidy")
    assert {"runs.csv", "scores.csv", "stats/tid_gap.csv"} <= set(inputs.absent)
    for name, fn in F.FIGURE_FUNCTIONS.items():
        texts = [t.get_text() for ax in fn(inputs).axes for t in ax.texts]
        assert any(F.NO_RUNS in t.replace("\n", " ") for t in texts), name


def test_empty_tables_draw_no_data_panels(tmp_path, tables):
    for name, frame in tables.items():
        frame.iloc[:0].to_csv(tmp_path / f"{name}.csv", index=False)
    inputs = F.load_inputs(tmp_path)
    assert len(inputs.runs) == 0
    F.make_figures(tmp_path, None, tmp_path / "empty", names=("tid_curves", "eval_mode_gap"))
    assert (tmp_path / "empty" / "tid_curves.png").stat().st_size > 5000


def test_bad_table_names_the_file_and_the_fix(tmp_path):
    pd.DataFrame({"run_id": ["a"], "value": [1.0]}).to_csv(tmp_path / "runs.csv", index=False)
    with pytest.raises(ValueError, match=r"runs\.csv lacks column.*normlab collect"):
        F.load_inputs(tmp_path)


def _points(ax):
    """(x, y) of every marker-only line on an axis."""
    out = []
    for line in ax.get_lines():
        if line.get_linestyle() in ("None", "none", "") and line.get_marker() in ("o", "s"):  # not the caps
            out += list(zip(line.get_xdata(), line.get_ydata(), strict=True))
    return out


def test_tid_vs_gap_draws_the_stats_numbers_and_counts_what_it_draws(inputs):
    fig = F.FIGURE_FUNCTIONS["tid_vs_gap"](inputs)
    raw, ranks = fig.axes[:2]
    pts = inputs.tid_gap
    pts = pts[pts["included"] & (pts["tid_measure"] == "observed") & (pts["kind"] == "mean_tid")]
    drawn = sorted(_points(raw))
    expected = sorted(zip(pts["tid"], 100 * pts["gap_rel"], strict=True))
    assert len(drawn) == len(expected) > 0 and np.allclose(drawn, expected)
    assert sorted(_points(ranks)) == sorted(zip(pts["rank_tid"], pts["rank_gap"], strict=True))
    assert f"n = {len(pts)} points drawn" in fig.get_suptitle()
    corr = inputs.correlations
    row = corr[(corr["placement"] == "post") & (corr["tid_measure"] == "observed")
               & (corr["kind"] == "mean_tid")].iloc[0]
    assert f"ρ = {row['rho']:+.2f}" in tid_vs_gap.correlation_text(inputs, "post")
    assert raw.get_yscale() == "symlog" and raw.get_xscale() == "log"


def test_tid_curves_and_eval_mode_gap_draw_the_stats_numbers(inputs):
    fig = F.FIGURE_FUNCTIONS["tid_curves"](inputs)
    curves = inputs.tid_curves
    want = curves[(curves["norm"] == "bn") & (curves["dataset"] == "bible_es_en") & (curves["placement"] == "pre")
                  & (curves["kind"] == "mean_tid") & (curves["summary"] == "max") & (curves["group"] == "seeds")]
    ys = [tuple(np.round(line.get_ydata(), 10)) for ax in fig.axes for line in ax.get_lines()]
    assert tuple(np.round(want.sort_values("step")["mean"].to_numpy(), 10)) in ys
    fig = F.FIGURE_FUNCTIONS["eval_mode_gap"](inputs)
    s = inputs.summary
    bn = s[(s["dataset"] == "fashion_mnist") & (s["norm"] == "bn") & (s["placement"] == "post")
           & (s["measure"] == "primary") & (s["stats"] == "batch_stats")]["mean"].iloc[0]
    drawn = [y for ax in fig.axes for line in ax.get_lines() for y in np.atleast_1d(line.get_ydata())]
    assert np.isclose(drawn, 100 * bn).any()  # accuracy in %, as the tables
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert len(titles) == 3 and not any(t == "" for t in titles)  # no empty panels


def test_training_curves_say_the_loss_includes_rbns_penalty_and_colours_are_distinct(inputs):
    fig = F.FIGURE_FUNCTIONS["training_curves"](inputs)
    assert "includes RBN's penalty" in fig.get_suptitle()
    from normlab.norms import NORMS  # every registered norm has a colour of its own

    assert len(set(style.NORM_COLORS.values())) == len(style.NORM_COLORS) == len(NORMS)


def _diverged_markers(fig):
    return [line for ax in fig.axes for line in ax.get_lines()
            if line.get_marker() == "x" and line.get_color() == style.DIVERGED_COLOR]


def test_diverged_runs_are_marked_not_dropped(inputs):
    fig = F.FIGURE_FUNCTIONS["tid_curves"](inputs)
    assert _diverged_markers(fig), "the diverged BN run should end in a red x"
    assert any("1 diverged" in t.get_text() for ax in fig.axes for t in ax.texts)
    assert _diverged_markers(F.FIGURE_FUNCTIONS["training_curves"](inputs))
    dataset, placement, norm, seed = DIVERGED
    assert f"{dataset}/{placement}/{norm}/seed{seed}" in set(inputs.runs.loc[inputs.runs["status"] == "diverged",
                                                                             "run_id"])


def test_tid_decomposition_is_per_bn_layer_and_never_stacked(inputs):
    fig = F.FIGURE_FUNCTIONS["tid_decomposition"](inputs)
    assert not [p for ax in fig.axes for p in ax.patches if type(p).__name__ == "Rectangle" and p.get_height() > 0]
    labels = {t.get_text() for ax in fig.axes for t in ax.get_xticklabels()}
    assert labels and all(label.startswith(("E", "D")) for label in labels)
    # translation: the BN modules are the encoder's (the decoder's norms are LN: no shadow rows drawn)
    assert not any(label.startswith("D") for ax in fig.axes if "bible_es_en" in ax.get_title()
                   for label in (t.get_text() for t in ax.get_xticklabels()))


def test_subtitle_counts_missing_and_diverged_runs_and_scale():
    tables = build_tables(datasets=["brown_pos", "bible_es_en"], norms=["bn", "rbn"], seeds=(0, 1, 2), steps=300)
    text = style.subtitle(tables["runs"])
    assert "(laptop)" in text and "1 diverged, 1 missing run(s)" in text and "3 seeds per cell" in text


def test_save_is_atomic(tmp_path, inputs, monkeypatch):
    fig = F.FIGURE_FUNCTIONS["tid_vs_gap"](inputs)
    F.save_figure(fig, tmp_path, "x")
    before = (tmp_path / "x.png").read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        F.save_figure(fig, tmp_path, "x")
    assert (tmp_path / "x.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pdf", "x.png"]


def test_the_tidy_fixture_has_the_contract_columns(tables):
    for name, cols in TIDY_TABLES.items():
        assert set(cols) <= set(tables[name].columns), name


def test_every_figure_carries_the_commit_and_config_hash_in_its_metadata(tmp_path, root, inputs):
    """PDF and PNG: the commit that drew it, whether the sources were dirty, and the configuration's hash
    (`normlab figures --config-sha256`, as the workflow passes it), read back from the files."""
    from normlab.provenance import source_state

    digest = "ab" * 32
    assert normlab_main(["figures", "--tidy", str(root / "tidy"), "--stats", str(root / "stats"),
                         "--out", str(tmp_path / "figs"), "--only", "tid_vs_gap", "conditioning",
                         "--config-sha256", digest]) == 0
    state = source_state()
    assert state["commit"]  # the tests run in a checkout
    for name in ("tid_vs_gap", "conditioning"):
        for ext in ("pdf", "png"):
            assert F.read_stamp(tmp_path / "figs" / f"{name}.{ext}") == {
                "commit": state["commit"], "dirty": str(state["dirty"]).lower(), "config_sha256": digest}
    # the same tables and stamp give the same PDF (no creation date in it)
    F.save_figure(F.tid_vs_gap(inputs), tmp_path / "again", "tid_vs_gap", stamp=F.figure_stamp(digest))
    assert (tmp_path / "again" / "tid_vs_gap.pdf").read_bytes() == (tmp_path / "figs" / "tid_vs_gap.pdf").read_bytes()
    # a figure drawn without a stamp says so
    F.save_figure(F.tid_vs_gap(inputs), tmp_path / "plain", "tid_vs_gap")
    for ext in ("pdf", "png"):
        with pytest.raises(ValueError, match="carries no normlab stamp"):
            F.read_stamp(tmp_path / "plain" / f"tid_vs_gap.{ext}")


def test_a_panel_whose_ln_did_not_learn_says_so():
    import pandas as pd

    from normlab.analysis.plots.inputs import Inputs

    bars = pd.DataFrame({"dataset": ["a", "b"], "testable": [True, False]})
    runs = pd.DataFrame({"dataset": ["a", "b"], "task": ["tagging", "translation"]})
    inputs = Inputs(runs=runs, scores=pd.DataFrame(), stats={"learning_bars": bars}, settings={})
    assert "did not learn" not in inputs.title("a") and inputs.title("a").startswith("NLP · a (tagging)")
    assert inputs.title("b").endswith("LN did not learn: pipeline check")


def test_every_per_setting_figure_marks_the_panels_of_a_setting_whose_ln_did_not_learn(inputs):
    import dataclasses

    bars = inputs.stats["learning_bars"].copy()
    bars["testable"] = bars["dataset"] != "brown_lm"  # as the learning bars would say of a pipeline check
    failed = dataclasses.replace(inputs, stats={**inputs.stats, "learning_bars": bars})
    marked = set()
    for name, draw in F.FIGURE_FUNCTIONS.items():
        titles = [ax.get_title() for ax in draw(failed).axes]
        assert not [t for t in titles if "· bible_es_en (" in t and "did not learn" in t], name
        brown = [t for t in titles if "· brown_lm (" in t]
        assert all("LN did not learn: pipeline check" in t for t in brown), (name, brown)
        marked |= {name} if brown else set()
    assert {"conditioning", "eval_mode_gap", "tid_bn_vs_rbn", "tid_curves", "tid_decomposition",
            "training_curves"} <= marked
