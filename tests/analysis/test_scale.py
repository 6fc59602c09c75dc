"""The scale study's table and findings (normlab.analysis.scale) on hand-made statistics rows."""

import numpy as np
import pandas as pd
import pytest

from normlab.analysis.scale import findings, scale_table


def _points():
    return pd.DataFrame({
        "setting": ["mt.base", "mt.depth-8"], "corpus": ["mt", "mt"], "factor": ["depth", "depth"],
        "level": ["4", "8"], "level_value": [4.0, 8.0], "level_rank": [0, 1], "is_base": [True, False],
        "placement": ["post", "post"]})


def _tid(setting, norm, seed, ratio, summary="max", first=None, status="completed"):
    rows = []
    for s, r in ((summary, ratio), ("first", first if first is not None else ratio)):
        rows.append(dict(dataset=setting, placement="post", norm=norm, seed=seed, kind="mean_tid", status=status,
                         summary=s, ratio_ref=r, observed=0.03 * r, floor_ref=0.03, floor_ref_kind="sentence",
                         excess_sentence=0.03 * np.sqrt(max(r**2 - 1, 0)), excess_token=np.nan, lag_ratio=1.0,
                         growth=np.nan, probe_mode="train"))
    return rows


def _gap(setting, comparison, diff, lo, hi, p):
    return dict(comparison=comparison, measure="primary", dataset=setting, placement="post", diff_mean=diff,
                ci_low=lo, ci_high=hi, rel_effect=diff / 20, n_pairs=3, p_holm_worse=p, mde_rel=0.05)


def _bars(testable=(True, True)):
    return pd.DataFrame([dict(dataset=s, placement="post", metric="bleu", ln_mean=20.0, testable=t,
                              reason="" if t else "LN did not learn") for s, t in zip(("mt.base", "mt.depth-8"),
                                                                                      testable, strict=True)])


def _stats(tid, comps, bars=None):
    return {"tid_summary": pd.DataFrame(tid), "comparisons": pd.DataFrame(comps),
            "learning_bars": bars if bars is not None else _bars()}


def test_each_point_gets_its_seed_means_gaps_and_the_ratio_to_its_floor():
    tid = ([r for s in (1, 2, 3) for r in _tid("mt.base", "bn", s, 1.0)]
           + [r for s, v in ((1, 3.0), (2, 4.0), (3, 5.0)) for r in _tid("mt.depth-8", "bn", s, v, first=6.0)]
           + _tid("mt.depth-8", "rbn", 1, 1.3)
           + _tid("mt.base", "bn", 4, 99.0, status="diverged"))  # not a completed run
    comps = [_gap("mt.base", "bn-ln", 0.1, -0.5, 0.7, 0.8), _gap("mt.depth-8", "bn-ln", -3.0, -4.0, -2.0, 0.01),
             _gap("mt.depth-8", "rbn-ln", -0.2, -1.0, 0.6, 0.9)]
    table = scale_table(_points(), _stats(tid, comps), "max").set_index("level")
    assert table.loc["4", "bn_ratio"] == 1.0 and table.loc["4", "bn_seeds"] == 3
    assert np.isclose(table.loc["8", "bn_ratio"], 4.0) and np.isclose(table.loc["8", "bn_ratio_first"], 6.0)
    assert table.loc["8", "bn_gap"] == -3.0 and table.loc["8", "rbn_gap"] == -0.2 and table.loc["8", "ln_mean"] == 20
    assert table.loc["8", "floor_kind"] == "sentence" and table.loc["8", "rbn_ratio"] == pytest.approx(1.3)
    assert np.isnan(table.loc["4", "rbn_ratio"])  # no RBN run at the base point
    text = " ".join(findings(table.reset_index()))
    assert "largest at 8" in text and "significantly worse (Holm p < 0.05) at 8" in text
    assert "first layer 6.00" in text


def test_a_point_without_runs_is_listed_and_said_to_have_none():
    stats = _stats(_tid("other.base", "bn", 1, 1.0), [_gap("other.base", "bn-ln", 0.0, 0, 0, 1.0)])
    table = scale_table(_points(), stats, "max")
    assert len(table) == 2 and table["bn_ratio"].isna().all()
    assert findings(table) == ["mt, depth: no completed runs yet."]


def test_an_untestable_point_says_so():
    tid = [r for s in (1, 2, 3) for p in ("mt.base", "mt.depth-8") for r in _tid(p, "bn", s, 1.0)]
    stats = _stats(tid, [_gap("mt.base", "bn-ln", 0.1, -0.5, 0.7, 0.8)], _bars((True, False)))
    table = scale_table(_points(), stats, "max")
    assert table["testable"].tolist() == [True, False]
    assert table["not_testable_reason"].tolist()[1] == "LN did not learn"
    assert "not testable: 8" in findings(table)[0]


def test_the_cli_names_a_missing_or_empty_points_file(tmp_path, capsys):
    from normlab.cli import main

    args = ["scale", "--tidy", str(tmp_path / "tidy"), "--stats", str(tmp_path / "stats"), "--tables",
            str(tmp_path / "t"), "--figures", str(tmp_path / "f"), "--points"]
    with pytest.raises(SystemExit, match=r"sweep_points\.csv does not exist; the workflow writes it"):
        main(args + [str(tmp_path / "sweep_points.csv")])
    (tmp_path / "sweep_points.csv").write_text(
        "setting,corpus,factor,level,level_value,level_rank,is_base,placement\n")
    with pytest.raises(SystemExit, match="lists no sweep points; the config has no `sweep`"):
        main(args + [str(tmp_path / "sweep_points.csv")])
    assert not (tmp_path / "t").exists() and not (tmp_path / "f").exists()  # nothing half-written
