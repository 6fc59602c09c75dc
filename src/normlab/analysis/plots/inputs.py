"""What the figures read: the statistics tables (every drawn number) and, for the raw points beside
them (one dot per seed, diverged runs), the tidy ``runs`` and ``scores``.  Absent files are empty."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..contract import STATS_TABLES, tidy_columns
from ..stats import read_settings, read_stats
from ..tidy import read_tidy
from .style import column_title

TIDY_READ = ("runs", "scores")


@dataclass
class Inputs:
    runs: pd.DataFrame
    scores: pd.DataFrame
    stats: dict[str, pd.DataFrame]
    settings: dict
    absent: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> pd.DataFrame:
        stats = self.__dict__.get("stats", {})
        if name in stats:
            return stats[name]
        raise AttributeError(name)

    @property
    def declared(self) -> str:
        return self.settings["declared"]["tid_summary"]

    def counts(self, **cell) -> dict[str, int]:
        """How many runs of a cell (any subset of dataset/placement/norm) have each status."""
        runs = self.runs
        mask = pd.Series(True, index=runs.index)
        for key, value in cell.items():
            mask &= runs[key] == value
        return runs.loc[mask, "status"].value_counts().to_dict()

    def task_of(self, dataset: str) -> str:
        for frame in (self.runs, *self.stats.values()):
            if {"dataset", "task"} <= set(frame.columns):
                hit = frame.loc[frame["dataset"] == dataset, "task"]
                if len(hit):
                    return str(hit.iloc[0])
        return "?"

    def title(self, dataset: str) -> str:
        """A panel's title: the setting, and, where its LN fails the learning bar (stats ``learning_bars``),
        that it did not learn, so no reader takes the panel for evidence."""
        bars = self.stats.get("learning_bars", pd.DataFrame())
        failed = "testable" in bars.columns and (~bars.loc[bars["dataset"] == dataset, "testable"].astype(bool)).any()
        return column_title(dataset, self.task_of(dataset)) + ("\nLN did not learn: pipeline check" if failed else "")


def load_inputs(tidy_dir: str | Path, stats_dir: str | Path | None = None) -> Inputs:
    """The tidy runs and scores of ``tidy_dir`` and every statistics table of ``stats_dir`` (either may be
    incomplete: an absent file is an empty table, listed in ``absent``)."""
    tidy_dir = Path(tidy_dir)
    absent = [f"{n}.csv" for n in TIDY_READ if not (tidy_dir / f"{n}.csv").is_file()]
    tidy = read_tidy(tidy_dir, TIDY_READ, optional=TIDY_READ)
    for name in TIDY_READ:
        if tidy[name].empty:
            tidy[name] = pd.DataFrame(columns=tidy_columns(name))
    stats_dir = Path(stats_dir) if stats_dir is not None else None
    absent += [f"stats/{n}.csv" for n in STATS_TABLES if stats_dir is None or not (stats_dir / f"{n}.csv").is_file()]
    return Inputs(runs=tidy["runs"], scores=tidy["scores"], stats=read_stats(stats_dir, optional=True),
                  settings=read_settings(stats_dir, optional=True), absent=absent)
