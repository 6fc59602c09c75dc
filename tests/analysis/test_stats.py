"""normlab stats on synthetic tidy tables with planted effects (known answers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from normlab.analysis import stats
from normlab.analysis.tidy import write_tidy
from normlab.cli import main

from .synthetic_tidy import synthetic_tidy

SMALL = dict(datasets={"ds_tr": ("translation", "bleu", 30.0, 1.0), "ds_lm": ("lm", "ppl", 50.0, 1.0)},
             norms=("ln", "bn", "rbn"))
SMALL_CLS = dict(datasets={"ds_cls": ("classification", "accuracy", 0.8, 0.01)}, norms=("ln", "bn", "rbn"))


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
            # the interval is on the test's scale: BLEU points; ppl (relative margin) on the log scale
            assert r["ci_low"] > (0.5 if dataset == "ds_tr" else 0.01) and r["significant"]
            assert r["rel_ci_low"] > 0.01 and r["p_holm"] >= r["p_two_sided"] and r["p_holm_better"] < 0.05
            assert r["holm_m"] == 4 and r["test"] == "ttest_rel" and r["n_pairs"] == 5
            assert r["test_scale"] == ("absolute" if dataset == "ds_tr" else "log") and r["ci_method"] == "t (4 df)"
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
    assert six["p_wilcoxon"] == pytest.approx(0.03125) and six["p_two_sided"] < 0.001
    assert np.isnan(stats.paired_test(np.array([1.0, 1.2, 0.9]))["p_wilcoxon"])
    one = stats.paired_test(np.array([0.5]))
    assert np.isnan(one["p_two_sided"]) and np.isnan(one["ci_low"]) and "no test" in one["note"]


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


def test_tid_summary_puts_the_floors_beside_the_tid_and_the_correlation_runs():
    datasets = {f"d{i}": ("classification", "accuracy", 0.8, 0.01) for i in range(6)}
    effects = {("bn", f"d{i}", None): -0.5 * i for i in range(6)}  # the BN deficit grows with i ...
    level = {f"d{i}": 1.2 + i for i in range(6)}  # ... and so does the TID
    out = stats.compute(synthetic_tidy(datasets=datasets, norms=("ln", "bn"), effects=effects, tid_level=level,
                                       tid_growth={"d5": 4.0}))
    t = out["tid_summary"]
    d5 = t[(t["dataset"] == "d5") & (t["norm"] == "bn") & (t["kind"] == "mean_tid") & (t["summary"] == "max")]
    assert (d5["floor_ref_kind"] == "sentence").all() and d5["declared"].all()
    assert d5["ratio_ref"].mean() == pytest.approx(6.2, rel=0.05)  # batch_vs_population / sentence floor
    assert d5["ratio_token"].mean() == pytest.approx(6.2 * 1.3, rel=0.05)  # the token floor is lower
    # per layer, the excess over the sentence floor in quadrature: sqrt(b^2 - f^2) (each summarised on its own)
    layers = out["tid_layers"]
    lay = layers[(layers["dataset"] == "d5") & (layers["norm"] == "bn")]
    b, f = lay["batch_vs_population"], lay["floor_sentence"]
    assert np.allclose(lay["excess_sentence"], np.sqrt(b**2 - f**2))
    # growth between the declared windows, after burn-in (3 / momentum 0.1 = 30 steps) and the warm-up
    assert d5["growth"].mean() == pytest.approx(4.0, rel=0.05) and (d5["window_start"] == 30).all()
    assert d5["lag_noise"].mean() == pytest.approx(np.sqrt(0.1 / 1.9) * f.mean(), rel=0.02)
    c = out["correlations"]
    main_rows = c[(c["tid_measure"] == "observed") & (c["kind"] == "mean_tid")]
    assert len(main_rows) == 2 and (main_rows["n_settings"] == 6).all()
    # one sign everywhere: gap = BN − LN, + = BN better; a larger TID with a larger deficit is ρ < 0
    assert (main_rows["rho"] < -0.8).all() and (main_rows["ci_high"] < 0).all()
    assert main_rows["p_method"].str.startswith("exact permutation (720").all()
    points = out["tid_gap"]
    assert len(points[(points["tid_measure"] == "observed") & points["included"]]) == 12


def test_a_layer0_excess_is_found_by_first_and_max_and_not_hidden_by_the_mean():
    out = stats.compute(synthetic_tidy(first_layer_level={"ds_cls": 4.0}, **SMALL_CLS))
    t = out["tid_summary"]
    bn = t[(t["norm"] == "bn") & (t["kind"] == "mean_tid") & (t["dataset"] == "ds_cls")]
    by = bn.groupby("summary")["ratio_ref"].mean()
    assert by["first"] == pytest.approx(4.0, rel=0.05) and by["max"] == pytest.approx(4.0, rel=0.05)
    assert by["mean"] == pytest.approx((4.0 + 3 * 0.5) / 4, rel=0.05)  # the mean dilutes it ...
    assert (bn.loc[bn["declared"], "summary"] == "max").all()  # ... the claims use the declared maximum
    layers = out["tid_layers"]
    first = layers[(layers["run_id"] == "ds_cls/post/bn/seed1") & layers["is_first"]]
    assert first["module"].tolist() == ["encoder.layers.0.attn_norm"]


def test_a_ci_at_three_seeds_is_wider_than_min_max_and_valid_at_its_n():
    d = np.array([0.2, 1.0, 0.6])
    res = stats.paired_test(d)
    assert res["ci_low"] < d.min() and res["ci_high"] > d.max() and res["ci_method"] == "t (2 df)"
    lo, hi = sps.t.interval(0.95, 2, loc=d.mean(), scale=d.std(ddof=1) / np.sqrt(3))
    assert (res["ci_low"], res["ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    many = stats.paired_test(np.random.default_rng(0).normal(1.0, 0.5, 12))
    assert many["ci_method"].startswith("BCa bootstrap")


def test_noninferiority_and_equivalence_at_the_declared_margin():
    d = np.array([-0.01, 0.02, 0.0, 0.01, -0.02])  # a tie
    tight, wide = stats.paired_test(d, margin=0.001), stats.paired_test(d, margin=1.0)
    assert tight["p_noninferior"] > 0.05 and wide["p_noninferior"] < 0.001 and wide["p_equivalent"] < 0.001
    assert tight["p_better"] > 0.05 and tight["p_worse"] > 0.05  # neither superior nor inferior
    assert stats.paired_test(d - 2.0, margin=1.0)["p_inferior"] < 0.001  # worse by more than the margin


def test_minimum_detectable_effect_grows_with_the_family_and_the_spread():
    a = stats.minimum_detectable_effect(3, 1.0, 0.05)
    assert stats.minimum_detectable_effect(3, 1.0, 0.05 / 10) > a > stats.minimum_detectable_effect(10, 1.0, 0.05)
    assert stats.minimum_detectable_effect(3, 2.0, 0.05) == pytest.approx(2 * a)
    assert np.isnan(stats.minimum_detectable_effect(1, 1.0, 0.05))
    out = stats.compute(synthetic_tidy(**SMALL))
    r = _row(out["comparisons"], "rbn-ln", "ds_tr", "post")
    assert r["mde_alpha"] == pytest.approx(0.05 / r["holm_m"]) and r["mde"] > 0


def test_a_setting_whose_ln_is_at_chance_is_not_testable_and_not_counted():
    datasets = {f"d{i}": ("classification", "accuracy", 0.8, 0.01) for i in range(5)}
    out = stats.compute(synthetic_tidy(datasets=datasets, norms=("ln", "bn", "rbn"), ln_at_chance=("d2",),
                                       seeds=(1, 2, 3)))
    bars = out["learning_bars"].set_index(["dataset", "placement"])
    assert not bars.loc[("d2", "post"), "testable"] and "did not learn" in bars.loc[("d2", "post"), "reason"]
    assert bars.drop(index="d2", level=0)["testable"].all()
    r = _row(out["comparisons"], "rbn-ln", "d2", "post")
    assert not r["testable"] and np.isnan(r["p_holm_noninferior"]) and "did not learn" in r["not_testable_reason"]
    assert _row(out["comparisons"], "rbn-ln", "d1", "post")["holm_m"] == 8  # 10 settings; the family excludes d2
    c = out["correlations"]
    row = c[(c["tid_measure"] == "observed") & (c["placement"] == "post")].iloc[0]
    assert row["n_settings"] == 4 and "d2" not in row["settings"].split(";") and row["n_excluded"] == 1


def test_a_run_too_short_for_burn_in_has_no_growth_and_says_why():
    tables = synthetic_tidy(**SMALL)
    tables["runs"]["momentum"] = tables["runs"]["momentum"].where(tables["runs"]["momentum"].isna(), 0.02)  # 150
    t = stats.compute(tables)["tid_summary"]
    bn = t[(t["norm"] == "bn") & t["declared"]]
    assert bn["growth"].isna().all() and bn["growth_note"].str.contains("run too short").all()


def test_correlation_edge_cases():
    assert "at least 3" in stats.spearman(np.array([1.0, 2.0]), np.array([1.0, 3.0]))["note"]
    flat = stats.spearman(np.array([1.0, 1.0, 1.0, 1.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert np.isnan(flat["rho"]) and "constant" in flat["note"]
    four = stats.spearman(np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 3.0, 5.0, 9.0]))
    assert four["rho"] == 1.0 and four["p"] == pytest.approx(2 / 24)  # exact: 2 of the 24 pairings are as extreme


def test_command_writes_every_file(tmp_path):
    write_tidy(synthetic_tidy(seeds=(1, 2), **SMALL), tmp_path / "tidy")
    analysis = '{"margins": {"bleu": {"value": 2.0}}}'
    assert main(["stats", "--tidy", str(tmp_path / "tidy"), "--out", str(tmp_path / "stats"),
                 "--analysis", analysis]) == 0
    got = stats.read_stats(tmp_path / "stats")
    assert set(got) == set(stats.STATS_TABLES)
    assert list(got["comparisons"].columns) == stats.COMPARISON_COLUMNS
    assert got["comparisons"]["significant"].dtype == bool
    settings = stats.read_settings(tmp_path / "stats")
    assert settings["declared"]["margins"]["bleu"]["value"] == 2.0  # as given
    assert settings["declared"]["margins"]["accuracy"]["value"] == 0.01  # the default
    assert settings["declared"]["tid_summary"] == "max" and settings["limitations"] == []
