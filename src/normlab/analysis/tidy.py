"""``normlab collect``: the runs of a manifest -> tidy CSV tables (``docs/analysis_contract.md`` §4).

This is the only place that reads run folders, probe folders and benchmark files; every table, figure,
notebook and the claims report reads the tables written here (through :func:`read_tidy`).

A manifest row whose run folder has no ``final.json`` becomes a ``missing`` run; a diverged run keeps
its logs (curves, online TID) but has no scores.  Probe files may be absent or empty (a diverged run, a
norm without batch statistics): they then add no rows.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from normlab.atomic import atomic_write
from normlab.metrics import HIGHER_IS_BETTER, higher_is_better

from .contract import (
    BASELINE_COLUMNS,
    BASELINES_TABLE,
    CONDITION_MEASURES,
    ID_COLUMNS,
    MANIFEST_COLUMNS,
    OLD_COMPONENT_NAMES,
    OLD_STYLE_DEFAULTS,
    STATUSES,
    TIDY_TABLES,
    tidy_columns,
)

TABLES = TIDY_TABLES
__all__ = ["ID_COLUMNS", "MANIFEST_COLUMNS", "TABLES", "collect", "columns", "read_tidy", "write_csv"]


def columns(table: str) -> list[str]:
    return tidy_columns(table)


# --- reading the pieces of one run ---------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict]:
    """Records of a JSON-lines file; an absent or empty file has none."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _read_json(path: Path) -> dict | None:
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


def _number(value) -> float:
    """JSON null (NaN/inf written by json_safe) -> NaN."""
    return math.nan if value is None else float(value)


def _optional_number(value) -> float:
    """A manifest cell: empty -> NaN."""
    return math.nan if value is None or value == "" else float(value)


def _scores(final: dict, primary: str) -> list[dict]:
    """final.json's ``{split: {stats: {metric: value}}}`` as rows; only metrics with a known direction
    (counts and the BLEU signature are not scores)."""
    rows = []
    for split in ("valid", "test"):
        for stats, metrics in (final.get(split) or {}).items():
            for metric, value in (metrics or {}).items():
                if metric in HIGHER_IS_BETTER:
                    rows.append(dict(split=split, stats=stats, metric=metric, value=_number(value),
                                     primary=metric == primary, higher_is_better=higher_is_better(metric)))
    return rows


def _curves(run_dir: Path) -> list[dict]:
    rows = []
    for rec in read_jsonl(run_dir / "metrics.jsonl"):
        step, kind = rec.get("step"), rec.get("kind")
        for metric, value in rec.items():
            if metric in ("step", "kind") or isinstance(value, str):
                continue
            rows.append(dict(step=step, kind=kind, metric=metric, value=_number(value)))
    return rows


def _tid(run_dir: Path) -> list[dict]:
    """The engine's online TID (``tid.jsonl``, method online); the end-of-training TID is the probe's."""
    return [{c: rec.get(c) for c in TABLES["tid"]} for rec in read_jsonl(run_dir / "tid.jsonl")]


def _decomposition(probe_dir: Path) -> list[dict]:
    """The probe's records; an old probe's (no probe_mode: eval mode, component ``floor``) read as such."""
    rows = []
    for rec in read_jsonl(probe_dir / "tid_decomposition.jsonl"):
        row = {c: rec.get(c) for c in TABLES["tid_decomposition"]}
        row["component"] = OLD_COMPONENT_NAMES.get(row["component"], row["component"])
        if "probe_mode" not in rec:
            row["probe_mode"] = OLD_STYLE_DEFAULTS["tid_decomposition"]["probe_mode"]
        rows.append(row)
    return rows


def _conditioning(probe_dir: Path) -> list[dict]:
    """One row per record and measure; an old probe's record (no ``site``) is the uncentred second
    moment of the norm's input."""
    rows = []
    old = OLD_STYLE_DEFAULTS["conditioning"]
    for rec in read_jsonl(probe_dir / "conditioning.jsonl"):
        for measure in CONDITION_MEASURES:
            rows.append(dict(module=rec.get("module"), layer=rec.get("layer"), position=rec.get("position"),
                             measure=measure, value=_number(rec.get(measure)), dim=rec.get("dim"),
                             n_tokens=rec.get("n_tokens"), site=rec.get("site", old["site"]),
                             centred=bool(rec.get("centred", old["centred"]))))
    return rows


def read_benchmark(path: Path) -> dict | None:
    """One Snakemake ``benchmark:`` TSV (columns s, h:m:s, max_rss, ..., cpu_time; one row per repeat;
    '-' where unmeasured) -> the mean over repeats of wall seconds, peak RSS (MB) and CPU seconds."""
    path = Path(path)
    if not path.is_file():
        return None
    table = pd.read_csv(path, sep="\t", na_values=["-", "NA"])
    missing = [c for c in ("s", "max_rss", "cpu_time") if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a Snakemake benchmark file (no column(s) {missing})")
    mean = table[["s", "max_rss", "cpu_time"]].apply(pd.to_numeric, errors="coerce").mean()
    return dict(s=mean["s"], max_rss_mb=mean["max_rss"], cpu_time_s=mean["cpu_time"])


def _benchmark_columns(manifest: pd.DataFrame) -> dict[str, str]:
    """Manifest column -> rule: ``benchmark`` is the train rule's; ``benchmark_<rule>`` any other rule's."""
    cols = {"benchmark": "train"} if "benchmark" in manifest.columns else {}
    cols.update({c: c.removeprefix("benchmark_") for c in manifest.columns if c.startswith("benchmark_")})
    return cols


def _check_identity(row: pd.Series, final: dict, run_dir: Path) -> None:
    """The run folder must hold the cell the manifest says (a wiring error otherwise)."""
    expected = dict(task=row["task"], norm=row["norm"], placement=row["placement"], seed=int(row["seed"]))
    wrong = {k: (v, final.get(k)) for k, v in expected.items() if k in final and final[k] != v}
    if wrong:
        detail = ", ".join(f"{k}: manifest {m!r}, final.json {f!r}" for k, (m, f) in wrong.items())
        raise ValueError(f"{run_dir}/final.json does not belong to manifest row {row['run_id']!r} ({detail}); "
                         "fix the manifest or the run folder")


# --- the collection ------------------------------------------------------------------------------


def read_manifest(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} does not exist; the workflow writes results/manifest.csv")
    manifest = pd.read_csv(path, dtype={"seed": int}, keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest {path} lacks column(s) {missing}; docs/analysis_contract.md §2 lists them")
    dup = manifest["run_id"][manifest["run_id"].duplicated()].tolist()
    if dup:
        raise ValueError(f"manifest {path} lists run_id(s) {dup} more than once")
    return manifest


def _resolve(base: Path, value: str) -> Path | None:
    if not value:
        return None
    p = Path(value)
    return p if p.is_absolute() else base / p


def collect(manifest: pd.DataFrame, base: Path = Path(".")) -> dict[str, pd.DataFrame]:
    """Every tidy table of §4 from a manifest; relative paths in it are taken from ``base``."""
    rows: dict[str, list[dict]] = {name: [] for name in TABLES}
    bench_cols = _benchmark_columns(manifest)
    # a missing run's primary metric: that of the dataset's other runs (unknown while none has finished)
    known_primary: dict[str, str] = {}
    finals = {}
    for _, row in manifest.iterrows():
        run_dir = _resolve(base, row["run_dir"])
        finals[row["run_id"]] = _read_json(run_dir / "final.json") if run_dir else None
        if finals[row["run_id"]]:
            known_primary.setdefault(row["dataset"], finals[row["run_id"]].get("primary_metric"))

    for _, row in manifest.iterrows():
        ids = {c: row[c] for c in ID_COLUMNS}
        ids["seed"] = int(ids["seed"])
        run_dir, probe_dir = _resolve(base, row["run_dir"]), _resolve(base, row["probe_dir"])
        final = finals[row["run_id"]]
        probe = _read_json(probe_dir / "probe.json") if probe_dir else None
        decomposition = _decomposition(probe_dir) if probe_dir else []
        if final is None:
            status = "missing"
            primary = known_primary.get(row["dataset"]) or ""
        else:
            _check_identity(row, final, run_dir)
            status = final["status"]
            primary = final.get("primary_metric") or known_primary.get(row["dataset"]) or ""
        tokens_per_batch = (probe or {}).get("tokens_per_batch")
        if tokens_per_batch is None and decomposition:
            tokens_per_batch = decomposition[0].get("tokens_per_batch")
        final = final or {}
        rows["runs"].append(ids | dict(
            status=status, grids=row["grids"], steps=final.get("steps"), epochs=final.get("epochs"),
            diverged_at_step=final.get("diverged_at_step"), wall_time_s=final.get("wall_time_s"),
            tokens_seen=final.get("tokens_seen"), tokens_per_batch=tokens_per_batch,
            n_params=final.get("n_params"), device=final.get("device"), primary_metric=primary,
            higher_is_better=higher_is_better(primary) if primary else None, config_hash=final.get("config_hash"),
            batch_stats=_as_bool(row["batch_stats"]), momentum=_optional_number(row["momentum"]),
            warmup_steps=_optional_number(row["warmup_steps"])))
        for col, rule in bench_cols.items():
            bench = read_benchmark(_resolve(base, row[col])) if row[col] else None
            if bench is not None:
                rows["benchmarks"].append(ids | dict(rule=rule, **bench))
        if status == "missing":
            continue
        if status == "completed":
            rows["scores"] += [ids | r for r in _scores(final, primary)]
        rows["curves"] += [ids | r for r in _curves(run_dir)]
        rows["tid"] += [ids | r for r in _tid(run_dir)]
        rows["tid_decomposition"] += [ids | r for r in decomposition]
        if probe_dir:
            rows["conditioning"] += [ids | r for r in _conditioning(probe_dir)]
    return {name: pd.DataFrame(rows[name], columns=columns(name)) for name in TABLES}


# --- writing and reading the tables --------------------------------------------------------------


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Atomically (temporary file + rename): a reader never sees half a table."""
    atomic_write(Path(path), lambda f: f.write(frame.to_csv(index=False).encode()))


def write_tidy(tables: dict[str, pd.DataFrame], out: Path) -> None:
    for name, frame in tables.items():
        write_csv(frame, Path(out) / f"{name}.csv")


def read_tidy(tidy_dir: Path, tables: tuple[str, ...] | None = None,
              optional: tuple[str, ...] = ()) -> dict[str, pd.DataFrame]:
    """The tidy tables as DataFrames with the contract's columns (an absent file is an error, except a
    name in ``optional``: then an empty frame).  ``baselines`` (``normlab baselines``) may be named too.

    Tables written before issue 14 are read as what they are (:func:`upgrade`): probed in eval mode,
    ``floor`` = ``floor_token``, no sentence floor, conditioning of the norm's input, uncentred;
    :func:`limitations` says what such tables cannot show."""
    out = {}
    for name in tables or tuple(TABLES):
        path = Path(tidy_dir) / f"{name}.csv"
        expected = BASELINE_COLUMNS if name == BASELINES_TABLE else columns(name)
        if not path.is_file():
            if name in optional:
                out[name] = pd.DataFrame(columns=expected)
                continue
            raise FileNotFoundError(f"tidy table {path} does not exist; run `normlab "
                                    f"{'baselines' if name == BASELINES_TABLE else 'collect'}` first")
        frame = pd.read_csv(path, keep_default_na=True)
        frame = upgrade(name, frame)
        lacking = [c for c in expected if c not in frame.columns]
        if lacking:
            raise ValueError(f"{path} lacks column(s) {lacking}; re-run `normlab collect`")
        for col in ("primary", "higher_is_better", "batch_stats", "centred"):
            if col in frame.columns:
                frame[col] = frame[col].map(_as_bool)
        out[name] = frame
    if "runs" in out and out["runs"]["batch_stats"].isna().any():
        out["runs"] = _derive_batch_stats(out)
    return out


def upgrade(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """An old-style table (before issue 14) with the new columns filled as what its rows were."""
    for col, value in OLD_STYLE_DEFAULTS.get(name, {}).items():
        if col not in frame.columns:
            frame[col] = value
    if name == "tid_decomposition" and len(frame):
        frame["component"] = frame["component"].replace(OLD_COMPONENT_NAMES)
    return frame


def _derive_batch_stats(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Old runs tables have no ``batch_stats``: a norm has batch statistics when its runs have
    batch-statistics scores, probe records of method batch_stats or online TID (the data say so)."""
    runs = tables["runs"].copy()
    evidence = set()
    if "scores" in tables:
        evidence |= set(tables["scores"].loc[tables["scores"]["stats"] == "batch_stats", "norm"])
    if "tid_decomposition" in tables:
        dec = tables["tid_decomposition"]
        evidence |= set(dec.loc[dec["method"] == "batch_stats", "norm"])
    if "tid" in tables:
        evidence |= set(tables["tid"]["norm"])
    missing = runs["batch_stats"].isna()
    runs.loc[missing, "batch_stats"] = runs.loc[missing, "norm"].isin(evidence)
    runs["batch_stats"] = runs["batch_stats"].astype(bool)
    return runs


def limitations(tables: dict[str, pd.DataFrame]) -> list[str]:
    """What these tables cannot show, from their content: an old probe (eval mode, no sentence floor),
    the old conditioning measure, no online TID, no baselines."""
    notes = []
    dec = tables.get("tid_decomposition")
    if dec is not None and len(dec):
        if (dec["probe_mode"] == "eval").any():
            notes.append("TID probed without dropout (eval mode, the old probe): the running statistics were "
                         "accumulated with dropout, so observed, batch_vs_population and lag carry a dropout "
                         "shift; needs a re-run with the new probe (probe_mode=train)")
        if not (dec["component"] == "floor_sentence").any():
            notes.append("no sentence floor (old probe): TID is compared with the i.i.d. token floor only, a "
                         "lower bound; needs a re-run with the new probe")
    cond = tables.get("conditioning")
    if cond is not None and len(cond) and not ((cond["site"] == "output") & cond["centred"].map(bool)).any():
        notes.append("conditioning is the old measure (uncentred second moment of the norm's input), not the "
                     "centred covariance of what the following linear layers see; needs a re-run with the new probe")
    tid = tables.get("tid")
    if tid is None or not len(tid):
        notes.append("no online TID records (tid.csv absent or empty): TID growth over training (claim A3) "
                     "and the TID curves cannot be measured")
    base = tables.get(BASELINES_TABLE)
    if base is None or not len(base):
        notes.append("no trivial baselines (baselines.csv absent or empty): no setting can pass its learning "
                     "bar; run `normlab baselines`")
    return notes


def _as_bool(value):
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str):
        return value.strip().lower() == "true" if value.strip() else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(value)


# --- the command ---------------------------------------------------------------------------------


MANIFEST_RUN_COLUMNS = ("batch_stats", "momentum", "warmup_steps")  # runs.csv columns copied from the manifest


def refresh_manifest_columns(runs: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with the manifest's per-cell columns (batch_stats, momentum, warmup_steps) set from
    ``manifest``, matched by run_id: what `normlab collect` would copy, for a tidy folder whose run
    folders are not at hand (committed tables written before those columns existed)."""
    m = manifest.set_index("run_id")
    unknown = sorted(set(runs["run_id"]) - set(m.index))
    if unknown:
        raise ValueError(f"run(s) {unknown[:3]} of runs.csv are not in the manifest; it is another grid's")
    out = runs.copy()
    out["batch_stats"] = out["run_id"].map(m["batch_stats"]).map(_as_bool)
    for col in ("momentum", "warmup_steps"):
        out[col] = out["run_id"].map(m[col]).map(_optional_number)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, type=Path, help="results/manifest.csv (contract §2)")
    parser.add_argument("--out", required=True, type=Path, help="folder of the tidy CSVs (results/tidy)")
    parser.add_argument("--base", type=Path, default=None,
                        help="folder that relative paths in the manifest start from (default: the current one)")
    parser.add_argument("--refresh-manifest-columns", action="store_true",
                        help="only set runs.csv's manifest columns (batch_stats, momentum, warmup_steps) in --out "
                             "from the manifest, without reading run folders (re-analysing committed tables)")


def run(args: argparse.Namespace) -> int:
    if args.refresh_manifest_columns:
        runs = read_tidy(args.out, ("runs",))["runs"]
        write_csv(refresh_manifest_columns(runs, read_manifest(args.manifest))[columns("runs")],
                  Path(args.out) / "runs.csv")
        print(f"runs.csv in {args.out}: {', '.join(MANIFEST_RUN_COLUMNS)} from {args.manifest}")
        return 0
    manifest = read_manifest(args.manifest)
    tables = collect(manifest, args.base or Path("."))
    write_tidy(tables, args.out)
    status = tables["runs"]["status"].value_counts()
    counts = ", ".join(f"{status.get(s, 0)} {s}" for s in STATUSES)
    print(f"collected {len(manifest)} runs ({counts}) into {args.out}")
    return 0
