"""The report's captions: scale, seeds and key number read from the tables when the caption is rendered
(not when the workflow is parsed), looked up in the statistics, never re-computed."""

from __future__ import annotations

import pandas as pd

from normlab.analysis.captions import KEYS, Caption, Captions
from normlab.analysis.contract import FIGURES

from .tidy_fixture_figures import write_stats, write_tidy


def test_captions_read_the_tables_when_asked_and_say_what_is_absent(tmp_path):
    captions = Captions(tmp_path / "tidy", tmp_path / "stats", tmp_path / "tables")
    caption = captions["tid_vs_gap"]
    assert repr(caption) == "Caption('tid_vs_gap')" and repr(captions) == "Captions()"  # never a re-run trigger
    assert caption.key == "no correlation in the statistics"  # nothing written yet
    assert caption.seeds == "unknown (no runs.csv)"
    assert set(FIGURES) <= set(KEYS)  # every figure has a key number

    write_tidy(tmp_path / "tidy", datasets=["fashion_mnist", "bible_es_en"], seeds=(0, 1), steps=600)
    write_stats(tmp_path / "tidy", tmp_path / "stats")
    runs = pd.read_csv(tmp_path / "tidy" / "runs.csv")
    assert caption.seeds.startswith(f"seeds 0, 1 ({len(runs)} runs: ")
    assert caption.scale == "; ".join(sorted(runs["scale"].astype(str).unique()))
    corr = pd.read_csv(tmp_path / "stats" / "correlations.csv")
    row = corr[(corr["kind"] == "mean_tid") & (corr["tid_measure"] == "observed")].iloc[0]
    assert f"{row['placement']}-norm: Spearman's ρ" in caption.key
    # the statistics change, the caption follows (read at render time, not at parse time)
    corr.loc[corr.index, "rho"] = 0.4711
    corr.to_csv(tmp_path / "stats" / "correlations.csv", index=False)
    assert "ρ(mean TID, " in caption.key and "= 0.47 (" in caption.key
    bars = pd.read_csv(tmp_path / "stats" / "learning_bars.csv")
    passes = int(bars["passes"].astype(str).str.lower().eq("true").sum())
    assert Caption("training_curves", tmp_path / "tidy", tmp_path / "stats").key == (
        f"LN passes its learning bar in {passes} of {len(bars)} settings")
    assert Caption("runtime", tmp_path / "tidy", tmp_path / "stats").key == ""  # no key number: none stated
