"""normlab stats on synthetic tidy tables with planted effects (known answers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from normlab.analysis import stats
from normlab.analysis.tidy import write_tidy
from normlab.cli import main

from .synthetic_tidy import synthetic_tidy

SMALL = dict(datasets={"ds_tr": ("translation", "bleu", 30.0, 1.0), "ds_lm": ("lm", "ppl", 50.0, 1.0)},
             norms=("ln", "bn", "rbn"))


def _row(comps, comparison, dataset, placement, measure="primary"):
    sel = comps[(comps["comparison"] == comparison) & (comps["dataset"] == dataset)
                & (comps["placement"] == placement) & (comps["measure"] == measure)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_a_planted_difference_is_detected_and_survives_holm():
    # RBN better by 1 unit everywhere; for ppl "better" means lower, and the oriented difference is still +1
    out = stats.compute(synthetic_tidy(effects={("rbn", None, None): 1.0}, **SMALL))
    comps = out["comparisons"]
    for dataset in ("ds_tr", "ds_lm"):
        for placement in ("post", "pre"):
            r = _row(comps, "rbn-ln", dataset, placement)
            assert r["diff_mean"] == pytest.approx(1.0, abs=0.15)
            assert r["ci_low"] > 0.5 and r["significant"] and r["p_holm"] >= r["p_ttest"]
            assert r["holm_m"] == 4 and r["test"] == "ttest_rel" and r["n_pairs"] == 5
            assert _row(comps, "bn-ln", dataset, placement)["significant"] == False  # noqa: E712 (no effect)
    lm = _row(comps, "rbn-ln", "ds_lm", "post")
    assert lm["mean_a"] < lm["mean_b"] and not lm["higher_is_better"]


def test_identical_columns_give_no_significance_and_no_crash():
    tables = synthetic_tidy(**SMALL)
    scores = tables["scores"]
    ln = scores[scores["norm"] == "ln"].set_index(["dataset", "placement", "seed", "split", "stats", "metric"])
    bn = (scores["norm"] == "bn") & (scores["stats"] == "population")
    key = scores.loc[bn, ["dataset", "placement", "seed", "split", "stats", "metric"]]
    scores.loc[bn, "value"] = ln.loc[pd.MultiIndex.from_frame(key), "value"].to_numpy()  # BN := LN exactly
    comps = stats.compute(tables)["comparisons"]
    r = _row(comps, "bn-ln", "ds_tr", "post")
    assert r["diff_mean"] == 0 and not r["significant"] and np.isnan(r["p"])
    assert "zero variance" in r["note"]


def test_wilcoxon_only_where_n_allows_and_small_n_has_no_test():
    six = stats.paired_test(np.array([1.0, 1.2, 0.9, 1.1, 1.3, 0.8]))
    assert six["p_wilcoxon"] == pytest.approx(0.03125) and six["p_ttest"] < 0.001
    assert np.isnan(stats.paired_test(np.array([1.0, 1.2, 0.9]))["p_wilcoxon"])
    one = stats.paired_test(np.array([0.5]))
    assert np.isnan(one["p_ttest"]) and np.isnan(one["ci_low"]) and "no test" in one["note"]


def test_missing_and_diverged_runs_are_counted_and_excluded():
    status = {("ds_tr", "post", "bn", 1): "missing", ("ds_tr", "post", "bn", 2): "diverged",
              **{("ds_lm", "pre", "rbn", s): "diverged" for s in range(1, 6)}}
    out = stats.compute(synthetic_tidy(status=status, **SMALL))
    r = _row(out["comparisons"], "bn-ln", "ds_tr", "post")
    assert (r["n_pairs"], r["n_missing_a"], r["n_diverged_a"], r["n_a"]) == (3, 1, 1, 3)
    dead = _row(out["comparisons"], "rbn-ln", "ds_lm", "pre")
    assert dead["n_pairs"] == 0 and dead["n_diverged_a"] == 5 and not dead["significant"]
    s = out["summary"]
    cell = s[(s["dataset"] == "ds_lm") & (s["placement"] == "pre") & (s["norm"] == "rbn") & (s["measure"] == "primary")
             & (s["stats"] == "population")].iloc[0]
    assert (cell["n"], cell["n_diverged"], cell["n_runs"]) == (0, 5, 5) and np.isnan(cell["mean"])


def test_summary_is_mean_and_sample_std():
    tables = synthetic_tidy(**SMALL)
    s = stats.compute(tables)["summary"]
    cell = s[(s["dataset"] == "ds_tr") & (s["placement"] == "post") & (s["norm"] == "ln") & (s["measure"] == "primary")
             & (s["stats"] == "population")].iloc[0]
    sc = tables["scores"]
    values = sc[(sc["run_id"].str.startswith("ds_tr/post/ln/")) & sc["primary"] & (sc["split"] == "test")
                & (sc["stats"] == "population")]["value"]
    assert cell["mean"] == pytest.approx(values.mean()) and cell["std"] == pytest.approx(values.std(ddof=1))


def test_batch_statistics_evaluation_gain_is_found():  # claim A1's comparison
    comps = stats.compute(synthetic_tidy(batch_stats_gain={"bn": 0.8}, **SMALL))["comparisons"]
    r = _row(comps, "bn:batch_stats-population", "ds_lm", "post")
    assert r["diff_mean"] == pytest.approx(0.8, abs=0.15) and r["significant"]
    assert not _row(comps, "rbn:batch_stats-population", "ds_lm", "post")["significant"]


def test_tid_summary_puts_the_floor_beside_the_tid_and_the_correlation_runs():
    datasets = {f"d{i}": ("classification", "accuracy", 0.8, 0.01) for i in range(6)}
    effects = {("bn", f"d{i}", None): -0.5 * i for i in range(6)}  # the BN deficit grows with i ...
    level = {f"d{i}": 1.2 + i for i in range(6)}  # ... and so does the TID
    out = stats.compute(synthetic_tidy(datasets=datasets, norms=("ln", "bn"), effects=effects, tid_level=level,
                                       tid_growth={"d5": 4.0}))
    t = out["tid_summary"]
    d5 = t[(t["dataset"] == "d5") & (t["kind"] == "mean_tid")]
    assert (d5["tid_source"] == "decomposition").all() and (d5["floor_source"] == "measured").all()
    assert d5["excess_ratio"].mean() == pytest.approx(6.2, rel=0.05)
    assert 3.0 < d5["growth"].mean() < 4.0  # quarter averages: a little below the end-to-end factor 4
    c = out["correlations"]
    main_rows = c[(c["tid_measure"] == "observed") & (c["kind"] == "mean_tid")]
    assert len(main_rows) == 2 and (main_rows["n_datasets"] == 6).all()
    assert (main_rows["rho"] > 0.8).all() and (main_rows["ci_low"] > 0).all()


def test_correlation_edge_cases():
    assert "at least 3" in stats.spearman_with_ci(np.array([1.0, 2.0]), np.array([1.0, 3.0]))["note"]
    flat = stats.spearman_with_ci(np.array([1.0, 1.0, 1.0, 1.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert np.isnan(flat["rho"]) and "constant" in flat["note"]


def test_command_writes_every_file(tmp_path):
    write_tidy(synthetic_tidy(seeds=(1, 2), **SMALL), tmp_path / "tidy")
    assert main(["stats", "--tidy", str(tmp_path / "tidy"), "--out", str(tmp_path / "stats")]) == 0
    got = stats.read_stats(tmp_path / "stats")
    assert list(got["comparisons"].columns) == stats.COMPARISON_COLUMNS
    assert got["comparisons"]["significant"].dtype == bool
