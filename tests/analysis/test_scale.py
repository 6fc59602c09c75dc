"""The scale study's table and findings (normlab.analysis.scale) on hand-made tidy rows."""

import numpy as np
import pandas as pd

from normlab.analysis.scale import findings, scale_table


def _points():
    return pd.DataFrame({
        "setting": ["mt.base", "mt.depth-8"], "corpus": ["mt", "mt"], "factor": ["depth", "depth"],
        "level": ["4", "8"], "level_value": [4.0, 8.0], "level_rank": [0, 1], "is_base": [True, False],
        "placement": ["post", "post"]})


def _tid(setting, norm, seed, observed, floor=0.03):
    return dict(dataset=setting, placement="post", norm=norm, seed=seed, kind="mean_tid", status="completed",
                observed=observed, floor=floor, structure=observed - floor, lag=0.01,
                excess_ratio=observed / floor, growth=1.0)


def _gap(setting, comparison, diff, lo, hi, p):
    return dict(comparison=comparison, measure="primary", dataset=setting, placement="post", metric="bleu",
                mean_b=20.0, diff_mean=diff, ci_low=lo, ci_high=hi, n_pairs=3, p_holm=p)


def test_each_point_gets_its_seed_means_gaps_and_the_excess_over_its_floor():
    tid = pd.DataFrame([_tid("mt.base", "bn", s, 0.03) for s in (1, 2, 3)]
                       + [_tid("mt.depth-8", "bn", s, v) for s, v in ((1, 0.09), (2, 0.12), (3, 0.15))]
                       + [_tid("mt.depth-8", "rbn", 1, 0.04)]
                       + [dict(_tid("mt.base", "bn", 4, 9.9), status="diverged")])  # not a completed run
    comparisons = pd.DataFrame([_gap("mt.base", "bn-ln", 0.1, -0.5, 0.7, 0.8),
                                _gap("mt.depth-8", "bn-ln", -3.0, -4.0, -2.0, 0.01),
                                _gap("mt.depth-8", "rbn-ln", -0.2, -1.0, 0.6, 0.9)])
    table = scale_table(_points(), tid, comparisons).set_index("level")
    assert table.loc["4", "bn_tid"] == 0.03 and table.loc["4", "bn_seeds"] == 3
    assert np.isclose(table.loc["8", "bn_tid"], 0.12) and np.isclose(table.loc["8", "bn_excess"], 4.0)
    assert table.loc["8", "bn_gap"] == -3.0 and table.loc["8", "rbn_gap"] == -0.2 and table.loc["8", "ln_mean"] == 20
    assert np.isnan(table.loc["4", "rbn_tid"])  # no RBN run at the base point
    text = " ".join(findings(table.reset_index()))
    assert "largest at 8" in text and "significant (Holm p < 0.05) at 8" in text


def test_a_point_without_runs_is_listed_and_said_to_have_none():
    empty_tid = pd.DataFrame([_tid("other.base", "bn", 1, 0.03)])
    empty_cmp = pd.DataFrame([_gap("other.base", "bn-ln", 0.0, 0, 0, 1.0)])
    table = scale_table(_points(), empty_tid, empty_cmp)
    assert len(table) == 2 and table["bn_tid"].isna().all()
    assert findings(table) == ["mt, depth: no completed runs yet."]


def test_the_cli_names_a_missing_or_empty_points_file(tmp_path, capsys):
    import pytest

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
