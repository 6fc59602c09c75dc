"""What the report's captions state about a figure: the scale, the seeds, and its key number, read from
the tidy runs and the statistics when ``snakemake --report`` renders the caption (never written into
the caption files, ``workflows/report/*.rst``).

A rule passes :class:`Captions` as a param (``params: captions=Captions(TIDY, STATS, TABLES)``); a
caption file says ``{{ snakemake.params.captions["tid_vs_gap"].key }}``.  Snakemake does not record such a param,
so it never makes a job re-run.  The key numbers are looked up in the statistics tables (one row, or a
count of rows), not computed here: every derived number is computed once, by ``normlab stats``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .contract import SCALE_TABLE


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()


def _g(value, digits: int = 3) -> str:
    return "n/a" if pd.isna(value) else f"{value:.{digits}g}"


def _largest_bn(stats: dict, column: str) -> tuple[pd.Series | None, int]:
    """BN's run with the largest ``column`` of the declared mean-TID summary (``tid_summary.csv``), and how
    many runs have that column."""
    t = stats["tid_summary"]
    if t.empty:
        return None, 0
    t = t[(t["norm"] == "bn") & (t["kind"] == "mean_tid") & t["declared"].astype(str).str.lower().eq("true")]
    t = t.dropna(subset=[column])
    return (t.loc[t[column].idxmax()] if len(t) else None), len(t)


def _where(row: pd.Series) -> str:
    return f"{row['dataset']}, {row['placement']}-norm, seed {row['seed']}"


def _largest_ratio(stats: dict) -> str:
    row, _ = _largest_bn(stats, "ratio_ref")
    if row is None:
        return "no BN probe in the statistics"
    return (f"BN's end-of-training mean TID ({row['summary']} over layers) is at most {_g(row['ratio_ref'])}× its "
            f"{row['floor_ref_kind']} floor ({_where(row)})")


def _largest_growth(stats: dict) -> str:
    row, n = _largest_bn(stats, "growth")
    if row is None:
        return "no online TID records: growth over training not measured"
    return f"largest late/early growth of BN's online mean TID: {_g(row['growth'])}× ({_where(row)}; {n} runs measured)"


def _comparison_count(measure: str, comparison: str, what: str) -> Callable[[dict], str]:
    def key(stats: dict) -> str:
        c = stats["comparisons"]
        if c.empty:
            return "no comparisons in the statistics"
        c = c[(c["measure"] == measure) & (c["comparison"] == comparison)]
        testable = c[c["testable"].astype(str).str.lower() == "true"]
        significant = testable["significant"].astype(str).str.lower() == "true"
        return (f"{what}: a significant difference (Holm-adjusted, α = 0.05) in {int(significant.sum())} of "
                f"{len(testable)} testable settings ({len(c)} in all)")
    return key


def _correlation(stats: dict) -> str:
    c = stats["correlations"]
    if c.empty:
        return "no correlation in the statistics"
    rows = c[(c["kind"] == "mean_tid") & (c["tid_measure"] == "observed")]
    return "; ".join(f"{r.placement}-norm: Spearman's ρ(mean TID, {r.gap}) = {_g(r.rho, 2)} (p = {_g(r.p, 2)}, "
                     f"95% CI {_g(r.ci_low, 2)} to {_g(r.ci_high, 2)}, {r.n_settings} settings)"
                     for r in rows.itertuples()) or "no mean-TID correlation in the statistics"


def _learning_bars(stats: dict) -> str:
    bars = stats["learning_bars"]
    if bars.empty:
        return "no learning bars in the statistics"
    passes = bars["passes"].astype(str).str.lower() == "true"
    return f"LN passes its learning bar in {int(passes.sum())} of {len(bars)} settings"


def _scale(stats: dict, tables: Path | None = None) -> str:
    table = _read(Path(tables) / f"{SCALE_TABLE}.csv") if tables else pd.DataFrame()
    if table.empty or "bn_ratio" not in table:
        return "no scale-study table"
    row = table.loc[table["bn_ratio"].idxmax()]
    return (f"largest BN TID / floor of the sweep: {_g(row['bn_ratio'])} ({row['setting']}, {row['placement']}-norm); "
            f"RBN − LN there: {_g(row['rbn_gap'])} {row['metric']}")


# figure (or table) -> its key number
KEYS: dict[str, Callable[..., str]] = {
    "tid_curves": lambda s, t=None: _largest_growth(s),
    "tid_decomposition": lambda s, t=None: _largest_ratio(s),
    "tid_bn_vs_rbn": lambda s, t=None: _comparison_count("tid", "rbn-bn", "RBN's TID vs BN's")(s),
    "tid_vs_gap": lambda s, t=None: _correlation(s),
    "eval_mode_gap": lambda s, t=None: _comparison_count("primary", "bn:batch_stats-population",
                                                          "BN with batch statistics at inference vs population")(s),
    "training_curves": lambda s, t=None: _learning_bars(s),
    "conditioning": lambda s, t=None: _comparison_count("log10_c50", "bn-ln", "BN's C50 vs LN's")(s),
    "table2_bn_rbn": lambda s, t=None: _comparison_count("primary", "rbn-bn", "RBN vs BN, test metric")(s),
    "scale_study": _scale,
}


class Caption:
    """The scale, seeds and key number of one figure or table, read when the report asks for them."""

    def __init__(self, name: str, tidy_dir: str | Path, stats_dir: str | Path, tables_dir: str | Path | None = None):
        self.name, self.tidy_dir, self.stats_dir = name, Path(tidy_dir), Path(stats_dir)
        self.tables_dir = Path(tables_dir) if tables_dir is not None else None

    def __repr__(self) -> str:  # constant: shown in the report beside the params, never a re-run trigger
        return f"Caption({self.name!r})"

    def _runs(self) -> pd.DataFrame:
        return _read(self.tidy_dir / "runs.csv")

    @property
    def scale(self) -> str:
        runs = self._runs()
        return "; ".join(sorted(runs["scale"].astype(str).unique())) if "scale" in runs else "unknown (no runs.csv)"

    @property
    def seeds(self) -> str:
        runs = self._runs()
        if "seed" not in runs:
            return "unknown (no runs.csv)"
        statuses = ", ".join(f"{n} {s}" for s, n in runs["status"].value_counts().items())
        return f"seeds {', '.join(map(str, sorted(runs['seed'].unique())))} ({len(runs)} runs: {statuses})"

    @property
    def key(self) -> str:
        from .stats import read_stats

        try:
            stats = read_stats(self.stats_dir, optional=True)
        except (OSError, ValueError) as err:
            return f"statistics unreadable ({err})"
        return KEYS[self.name](stats, self.tables_dir) if self.name in KEYS else ""


class Captions:
    """:class:`Caption` by figure or table name, over one configuration's folders (a rule's param)."""

    def __init__(self, tidy_dir: str | Path, stats_dir: str | Path, tables_dir: str | Path | None = None):
        self.dirs = (tidy_dir, stats_dir, tables_dir)

    def __getitem__(self, name: str) -> Caption:
        return Caption(name, *self.dirs)

    def __repr__(self) -> str:
        return "Captions()"
