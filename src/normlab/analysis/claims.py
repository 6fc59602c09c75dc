"""``normlab claims``: one verdict per claim of ``claims.md`` (A1–A10, B1–B5) from the statistics.

The verdict rules are the small pure functions below; :data:`RULES` (printed at the top of the report)
says the same in words.  No rule looks at which answer the paper wants: each claim only names which
comparison, which direction counts as success, and which fraction of settings it asserts.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from normlab.train.checkpoint import atomic_write

from . import published
from .stats import ALPHA, SETTING, read_stats
from .tables import scale_label
from .tidy import read_tidy, write_csv

MIN_PAIRS = 3  # a setting is "tested" only with at least this many complete seed pairs
GROWTH_FACTOR = 2.0  # TID "explodes": late/early online TID at least doubles ...
EXCESS_FACTOR = 2.0  # ... and ends at least this many times above its sampling floor
MIN_DATASETS = 5  # a rank correlation across fewer datasets cannot be significant (exact p >= 0.083 at n=4)
GAP_CLOSED = 0.5  # A1: batch-statistics evaluation must recover at least half of BN's deficit to LN

RULES = f"""\
Verdict rules (normlab/analysis/claims.py; α = {ALPHA}):

1. Per setting (config × dataset × placement), a paired comparison of norm A with norm B is *better*
   or *worse* when the paired t-test over seeds is significant after Holm's correction across the
   settings of that comparison (p_holm < α), by the sign of the mean difference (oriented: positive =
   A better); *tie* when it is tested and not significant; *untested* with fewer than {MIN_PAIRS} complete
   seed pairs or differences of zero variance.  Missing and diverged runs are excluded and counted.
2. A claim asserts that a fraction f of its settings succeed (e.g. "RBN ≥ BN on every setting": success
   = better or tie, f = 1; "on most": f > 1/2; A8: f ≥ 17/20).  With S successes, F failures and U
   settings that are neither (untested, or ties for a "beats" claim): *supported* if S/(S+F+U) already
   reaches f; *contradicted* if even (S+U)/(S+F+U) cannot reach it; otherwise *inconclusive*.
   A "beats" claim fails only where A is significantly worse, so low power gives inconclusive, not
   contradicted.
3. TID claims (A2, A3) test, per setting over BN's completed seeds, log(late/early online TID) against
   log {GROWTH_FACTOR:g} and log(end TID / sampling floor) against log {EXCESS_FACTOR:g} (one-sample t-tests,
   scipy): "explodes" needs both significantly above, "stays small" needs the end TID significantly
   below {EXCESS_FACTOR:g}× its floor with no significant growth.  The floor is the probe's measured i.i.d.
   floor, else 1/√(tokens per batch).
4. A4 (rank correlation): supported if Spearman's ρ > 0 with p < α and its bootstrap CI above 0, across
   at least {MIN_DATASETS} datasets; contradicted if ρ < 0 with p < α and the CI below 0; else inconclusive.
5. Claims the runs cannot address (no such task in the config; unit-test claims) are inconclusive, with
   the reason.
"""


# --- the rules -------------------------------------------------------------------------------------


def setting_outcome(n_pairs: float, diff_mean: float, p_holm: float, alpha: float = ALPHA,
                    min_pairs: int = MIN_PAIRS) -> str:
    """'better' / 'worse' / 'tie' / 'untested' for one paired comparison (rule 1)."""
    if not (n_pairs >= min_pairs) or p_holm is None or not math.isfinite(p_holm):
        return "untested"
    if p_holm < alpha:
        return "better" if diff_mean > 0 else "worse"
    return "tie"


def fraction_verdict(outcomes: list[str], success: set[str], failure: set[str], threshold: float,
                     strict: bool = False) -> tuple[str, str]:
    """Rule 2: (verdict, reason) for "a fraction ``threshold`` of the settings succeed"."""
    total = len(outcomes)
    if total == 0:
        return "inconclusive", "no setting of the config addresses this claim"
    s = sum(o in success for o in outcomes)
    f = sum(o in failure for o in outcomes)
    u = total - s - f

    def reaches(x: float) -> bool:
        return x > threshold if strict else x >= threshold

    need = f"{'>' if strict else '≥'} {threshold:.3g} of settings"
    counts = f"{s} succeed, {f} fail, {u} undecided of {total}"
    if reaches(s / total):
        return "supported", f"{counts}; needs {need}"
    if not reaches((s + u) / total):
        return "contradicted", f"{counts}; needs {need}, unreachable"
    return "inconclusive", f"{counts}; needs {need}"


def one_sample_side(values: np.ndarray, threshold: float, alpha: float = ALPHA, min_n: int = MIN_PAIRS) -> str:
    """'above' / 'below' / 'unknown': is the mean of ``values`` significantly above or below ``threshold``?"""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if len(values) < min_n or np.ptp(values) == 0:
        return "unknown"
    if sps.ttest_1samp(values, threshold, alternative="greater").pvalue < alpha:
        return "above"
    if sps.ttest_1samp(values, threshold, alternative="less").pvalue < alpha:
        return "below"
    return "unknown"


def correlation_verdict(rho: float, p: float, ci_low: float, ci_high: float, n: int,
                        alpha: float = ALPHA, min_n: int = MIN_DATASETS) -> tuple[str, str]:
    """Rule 4."""
    if n < min_n or not math.isfinite(rho):
        return "inconclusive", f"{n} dataset(s), needs ≥ {min_n} with a defined ρ"
    if rho > 0 and p < alpha and ci_low > 0:
        return "supported", f"ρ = {rho:.2f} > 0, p = {p:.3g}, CI above 0"
    if rho < 0 and p < alpha and ci_high < 0:
        return "contradicted", f"ρ = {rho:.2f} < 0, p = {p:.3g}, CI below 0"
    return "inconclusive", f"ρ = {rho:.2f}, p = {p:.3g}, CI [{ci_low:.2f}, {ci_high:.2f}]"


def combine(verdicts: list[str]) -> str:
    """Several independent parts (e.g. placements): supported or contradicted only if no part disagrees."""
    if "supported" in verdicts and "contradicted" not in verdicts:
        return "supported"
    if "contradicted" in verdicts and "supported" not in verdicts:
        return "contradicted"
    return "inconclusive"


# --- evaluating each claim -------------------------------------------------------------------------


@dataclass
class Result:
    id: str
    claim: str
    verdict: str = "inconclusive"
    reason: str = ""
    evidence: list[str] = field(default_factory=list)
    n_seeds: str = "—"
    n_settings: int = 0
    n_missing: int = 0
    n_diverged: int = 0
    published: str = "—"


CLAIM_TEXT = {
    "A1": "BN's gap to LN comes from the train/inference inconsistency: comparable training loss, and "
          "batch-statistics evaluation closes much of the gap",
    "A2": "TID stays small through training in image classification and language modelling",
    "A3": "TID explodes during training in NMT, sequence labelling and text classification",
    "A4": "Across datasets, larger TID goes with a larger BN−LN deficit",
    "A5": "Where TID stays small (image, LM), BN beats LN",
    "A6": "RBN lowers TID relative to BN",
    "A7": "RBN ≥ BN on every setting",
    "A8": "RBN ≥ LN (or on par) on 17 of 20 settings",
    "A9": "RBN improves layer-wise conditioning over LN (smaller C50, C80, Cmax)",
    "A10": "RBN adds no inference cost over BN",
    "B1": "LN-simple ≥ LN on most datasets (bias and gain do not help)",
    "B2": "DetachNorm is worse than LN-simple (the derivatives of μ, σ matter)",
    "B3": "Gradient theorem for LN-simple / detached μ, σ",
    "B4": "LN over-fits: lower training loss but higher validation loss than LN-simple / AdaNorm",
    "B5": "AdaNorm beats LN on most datasets",
}
LOW_TID_TASKS = ("image", "lm")
HIGH_TID_TASKS = ("translation", "tagging", "classification")


def _rows(comps: pd.DataFrame, comparison: str, measure: str = "primary", tasks=None) -> pd.DataFrame:
    sel = comps[(comps["comparison"] == comparison) & (comps["measure"] == measure)]
    return sel[sel["task"].isin(tasks)] if tasks is not None else sel


def _outcomes(rows: pd.DataFrame) -> list[str]:
    return [setting_outcome(r.n_pairs, r.diff_mean, r.p_holm) for r in rows.itertuples()]


def _fill_counts(res: Result, rows: pd.DataFrame) -> None:
    res.n_settings = len(rows)
    if len(rows):
        lo, hi = int(rows["n_pairs"].min()), int(rows["n_pairs"].max())
        res.n_seeds = str(lo) if lo == hi else f"{lo}–{hi}"
        res.n_missing = int(rows["n_missing_a"].sum() + rows["n_missing_b"].sum())
        res.n_diverged = int(rows["n_diverged_a"].sum() + rows["n_diverged_b"].sum())


def _describe(r) -> str:
    ci = "" if not math.isfinite(r.ci_low) else f" [{r.ci_low:.3g}, {r.ci_high:.3g}]"
    p = "no test" if not math.isfinite(r.p_holm) else f"p_holm {r.p_holm:.2g}"
    fails = f"; {r.n_missing_a + r.n_missing_b} missing, {r.n_diverged_a + r.n_diverged_b} diverged" \
        if (r.n_missing_a + r.n_missing_b + r.n_diverged_a + r.n_diverged_b) else ""
    return (f"{r.dataset}/{r.placement} {r.comparison} {r.metric}: Δ {r.diff_mean:+.3g}{ci}, {p}, "
            f"n={r.n_pairs}{fails}" + (f" ({r.note})" if isinstance(r.note, str) and r.note else ""))


def paired_claim(cid: str, comps: pd.DataFrame, comparison: str, success: set[str], failure: set[str],
                 threshold: float, strict: bool, measure: str = "primary", tasks=None) -> Result:
    rows = _rows(comps, comparison, measure, tasks)
    res = Result(cid, CLAIM_TEXT[cid])
    _fill_counts(res, rows)
    res.verdict, res.reason = fraction_verdict(_outcomes(rows), success, failure, threshold, strict)
    if rows.empty:
        where = f" for tasks {', '.join(tasks)}" if tasks else ""
        res.reason = f"no {comparison} comparison{where} in this config's runs"
    res.evidence = [_describe(r) for r in rows.itertuples()]
    res.published = published.CLAIM_NUMBERS.get(cid, "—")
    return res


def _tid_beside_floor(tsum: pd.DataFrame, norms=("bn",)) -> list[str]:
    """'TID x (floor f; structure s; lag l)' per setting and norm: a TID is never shown without its floor."""
    t = tsum[(tsum["kind"] == "mean_tid") & (tsum["status"] == "completed") & tsum["norm"].isin(norms)]
    out = []
    for key, g in t.groupby(SETTING + ["norm"]):
        out.append(f"{key[1]}/{key[2]} {key[3]}: end mean TID {g['observed'].mean():.3g} "
                   f"(floor {g['floor'].mean():.3g} [{g['floor_source'].iloc[0] or 'n/a'}], "
                   f"structure {g['structure'].mean():.3g}, lag {g['lag'].mean():.3g}; "
                   f"growth late/early {g['growth'].mean():.3g}; n={len(g)})")
    return out


def tid_claim(cid: str, tsum: pd.DataFrame, runs: pd.DataFrame, tasks: tuple[str, ...], explode: bool) -> Result:
    """A2 (explode=False: stays small) and A3 (explode=True)."""
    res = Result(cid, CLAIM_TEXT[cid])
    bn_runs = runs[(runs["norm"] == "bn") & runs["task"].isin(tasks)]
    t = tsum[(tsum["kind"] == "mean_tid") & (tsum["norm"] == "bn") & (tsum["status"] == "completed")
             & tsum["task"].isin(tasks)]
    outcomes = []
    for key, _ in bn_runs.groupby(SETTING):
        mine = t[(t["config_name"] == key[0]) & (t["dataset"] == key[1]) & (t["placement"] == key[2])]
        growth = one_sample_side(np.log(mine["growth"]), math.log(GROWTH_FACTOR))
        excess = one_sample_side(np.log(mine["excess_ratio"]), math.log(EXCESS_FACTOR))
        if explode:
            outcome = ("success" if growth == "above" and excess == "above"
                       else "failure" if "below" in (growth, excess) else "unknown")
        else:
            outcome = ("success" if excess == "below" and growth != "above"
                       else "failure" if "above" in (growth, excess) else "unknown")
        outcomes.append(outcome)
        res.evidence.append(f"{key[1]}/{key[2]}: growth {growth} {GROWTH_FACTOR:g}×, end TID {excess} "
                            f"{EXCESS_FACTOR:g}× floor (n={len(mine)}) -> {outcome}")
    res.n_settings = len(outcomes)
    res.n_missing = int((bn_runs["status"] == "missing").sum())
    res.n_diverged = int((bn_runs["status"] == "diverged").sum())
    if len(t):
        counts = t.groupby(SETTING).size()
        res.n_seeds = str(counts.min()) if counts.min() == counts.max() else f"{counts.min()}–{counts.max()}"
    res.verdict, res.reason = fraction_verdict(outcomes, {"success"}, {"failure"}, 0.5, strict=True)
    if not outcomes:
        res.reason = f"no BN runs of task(s) {', '.join(tasks)} in this config"
    res.evidence += _tid_beside_floor(t)
    return res


def claim_a1(comps: pd.DataFrame) -> Result:
    res = Result("A1", CLAIM_TEXT["A1"])
    gap_rows = _rows(comps, "bn-ln")
    _fill_counts(res, gap_rows)
    outcomes = []
    for r in gap_rows.itertuples():
        key = (r.config_name, r.dataset, r.placement)

        def pick(comparison, measure, key=key):
            sel = _rows(comps, comparison, measure)
            sel = sel[(sel["config_name"] == key[0]) & (sel["dataset"] == key[1]) & (sel["placement"] == key[2])]
            return None if sel.empty else sel.iloc[0]

        if setting_outcome(r.n_pairs, r.diff_mean, r.p_holm) != "worse":
            res.evidence.append(f"{_describe(r)} -> no significant BN deficit here")
            continue
        gap = -r.diff_mean
        fix, loss = pick("bn:batch_stats-population", "primary"), pick("bn-ln", "final_train_loss")
        loss_worse = loss is not None and setting_outcome(loss.n_pairs, loss.diff_mean, loss.p_holm) == "worse"
        if fix is None or not math.isfinite(fix.ci_low):
            outcome = "unknown"
        elif fix.ci_low > 0 and fix.diff_mean >= GAP_CLOSED * gap and not loss_worse:
            outcome = "success"
        elif fix.ci_high < GAP_CLOSED * gap or loss_worse:
            outcome = "failure"
        else:
            outcome = "unknown"
        outcomes.append(outcome)
        fix_text = "no batch-statistics evaluation" if fix is None else \
            f"batch-stats eval gains {fix.diff_mean:+.3g} [{fix.ci_low:.3g}, {fix.ci_high:.3g}]"
        loss_text = ("" if loss is None else
                     f"; final train loss BN−LN Δ {loss.diff_mean:+.3g} (p_holm {loss.p_holm:.2g})")
        res.evidence.append(f"{r.dataset}/{r.placement}: LN better by {gap:.3g}; {fix_text}{loss_text} -> {outcome}")
    if not outcomes:
        res.reason = ("BN shows no significant deficit to LN in any tested setting: nothing to explain"
                      if len(gap_rows) else "no BN and LN runs to compare")
    else:
        res.verdict, res.reason = fraction_verdict(outcomes, {"success"}, {"failure"}, 0.5, strict=True)
        res.reason += f" (success: batch-statistics evaluation recovers ≥ {GAP_CLOSED:g} of the gap, CI above 0, " \
                      "BN's training loss not significantly worse)"
    return res


def claim_a4(corr: pd.DataFrame) -> Result:
    res = Result("A4", CLAIM_TEXT["A4"])
    main = corr[(corr["tid_measure"] == "observed") & (corr["kind"] == "mean_tid")]
    verdicts = []
    for r in main.itertuples():
        v, why = correlation_verdict(r.rho, r.p, r.ci_low, r.ci_high, int(r.n_datasets))
        verdicts.append(v)
        res.evidence.append(f"{r.placement}: {why} over {r.n_datasets} dataset(s) [{r.datasets}], TID from "
                            f"{r.tid_source} -> {v}")
    for r in corr[(corr["tid_measure"] != "observed") & (corr["kind"] == "mean_tid")].itertuples():
        res.evidence.append(f"{r.placement}, TID part above the floor '{r.tid_measure}': ρ = {r.rho:.2f} "
                            f"(n={r.n_datasets})")
    res.n_settings = int(main["n_datasets"].sum()) if len(main) else 0
    res.verdict = combine(verdicts) if verdicts else "inconclusive"
    res.reason = "per placement: " + ", ".join(verdicts) if verdicts else "no BN and LN runs with a TID"
    return res


def claim_a6(comps: pd.DataFrame, tsum: pd.DataFrame) -> Result:
    res = paired_claim("A6", comps, "rbn-bn", {"better"}, {"worse"}, 0.5, True, measure="end_mean_tid")
    res.evidence += _tid_beside_floor(tsum, norms=("bn", "rbn"))
    return res


def claim_a9(comps: pd.DataFrame) -> Result:
    res = Result("A9", CLAIM_TEXT["A9"])
    rows = comps[(comps["comparison"] == "rbn-ln") & comps["measure"].str.startswith("log10_c")]
    _fill_counts(res, rows)
    res.verdict, res.reason = fraction_verdict(_outcomes(rows), {"better"}, {"worse"}, 0.5, True)
    res.reason += " (settings × {C50, C80, Cmax}, compared on the mean log10 over layers)"
    if rows.empty:
        res.reason = "no conditioning probes of RBN and LN runs in this config"
    res.evidence = [_describe(r) for r in rows.itertuples()]
    return res


def claim_a10(tidy: dict) -> Result:
    res = Result("A10", CLAIM_TEXT["A10"])
    bench = tidy["benchmarks"]
    means = bench[bench["rule"] == "train"].groupby("norm")["s"].mean()
    if {"bn", "rbn"} <= set(means.index):
        res.evidence.append(f"training wall time RBN/BN = {means['rbn'] / means['bn']:.2f} (runtime table; "
                            "training, not inference)")
    res.reason = ("the runs measure training time, not inference latency; at inference RBN is BN with population "
                  "statistics, a per-channel affine map: see tests/norms/test_reference.py "
                  "(BN's eval mode equals torch's BatchNorm1d) and tests/norms/test_powernorm.py::"
                  "test_inference_is_a_per_channel_affine_map")
    return res


def claim_b3(checks=None) -> Result:
    """Measured, not taken on trust: the theorem's four statements through our layers' backward passes
    on random float64 inputs (normlab.norms.theory).  Any statement off by more than 1e-9 contradicts."""
    from normlab.norms.theory import gradient_theorem_check

    checks = gradient_theorem_check() if checks is None else checks
    res = Result("B3", CLAIM_TEXT["B3"], n_settings=len(checks), n_seeds="—")
    for c in checks:
        res.evidence.append(f"{c.label}: worst mean error {c.max_mean_error:.1e} (relative), variance vs "
                            f"Var(g)/σ² {c.max_variance_excess:+.1e} worst excess, {c.max_variance_error:.1e} "
                            f"worst |error| over {c.trials} random inputs -> {'holds' if c.holds else 'FAILS'}")
    failed = [c.label for c in checks if not c.holds]
    res.verdict = "contradicted" if failed else "supported" if checks else "inconclusive"
    res.reason = (f"fails for {', '.join(failed)}" if failed else
                  f"all {len(checks)} statements hold to 1e-9 on random inputs (float64, H=64)")
    res.published = "Theorem (Xu et al. 2019, §3): stated exactly"
    return res


def claim_b4(comps: pd.DataFrame) -> Result:
    res = Result("B4", CLAIM_TEXT["B4"])
    outcomes, used = [], []
    for comparison in ("ln-ln_simple", "ln-adanorm"):
        train = _rows(comps, comparison, "final_train_loss")
        valid = _rows(comps, comparison, "valid_loss")
        both = train.merge(valid, on=SETTING, suffixes=("_t", "_v"))
        used.append(train)
        for r in both.itertuples():
            o_t = setting_outcome(r.n_pairs_t, r.diff_mean_t, r.p_holm_t)
            o_v = setting_outcome(r.n_pairs_v, r.diff_mean_v, r.p_holm_v)
            outcome = ("success" if o_t == "better" and o_v == "worse"
                       else "failure" if "worse" == o_t or "better" == o_v else "unknown")
            outcomes.append(outcome)
            res.evidence.append(f"{r.dataset}/{r.placement} {comparison}: train loss {o_t} "
                                f"(Δ {r.diff_mean_t:+.3g}), valid loss {o_v} (Δ {r.diff_mean_v:+.3g}) -> {outcome}")
    _fill_counts(res, pd.concat(used) if used else pd.DataFrame())
    res.n_settings = len(outcomes)
    res.verdict, res.reason = fraction_verdict(outcomes, {"success"}, {"failure"}, 0.5, True)
    res.published = "poster: 'Compared to AdaNorm, LayerNorm has lower training loss but higher validation loss'"
    return res


def evaluate(tidy: dict, stats: dict) -> list[Result]:
    comps, tsum, runs = stats["comparisons"], stats["tid_summary"], tidy["runs"]
    results = [
        claim_a1(comps),
        tid_claim("A2", tsum, runs, LOW_TID_TASKS, explode=False),
        tid_claim("A3", tsum, runs, HIGH_TID_TASKS, explode=True),
        claim_a4(stats["correlations"]),
        paired_claim("A5", comps, "bn-ln", {"better"}, {"worse"}, 0.5, True, tasks=LOW_TID_TASKS),
        claim_a6(comps, tsum),
        paired_claim("A7", comps, "rbn-bn", {"better", "tie"}, {"worse"}, 1.0, False),
        paired_claim("A8", comps, "rbn-ln", {"better", "tie"}, {"worse"}, 17 / 20, False),
        claim_a9(comps),
        claim_a10(tidy),
        paired_claim("B1", comps, "ln_simple-ln", {"better", "tie"}, {"worse"}, 0.5, True),
        paired_claim("B2", comps, "detachnorm-ln_simple", {"worse"}, {"better"}, 0.5, True),
        claim_b3(),
        claim_b4(comps),
        paired_claim("B5", comps, "adanorm-ln", {"better"}, {"worse"}, 0.5, True),
    ]
    return results


# --- the report ------------------------------------------------------------------------------------


def report(results: list[Result], runs: pd.DataFrame) -> str:
    status = runs["status"].value_counts()
    counts = ", ".join(f"{status.get(s, 0)} {s}" for s in ("completed", "diverged", "missing"))
    lines = ["# Claims report", "",
             f"Generated by `normlab claims` from the tidy tables and statistics: {scale_label(runs)}; "
             f"{len(runs)} runs ({counts}).",
             "Claims and their tests: `claims.md` of the reference notes (A: Wang et al. 2022; B: Xu et al. 2019; "
             "C is context, not a claim). The RBN paper's full Table 2 could not be read: its published numbers "
             "are the eight listed there, probably RBN's, placement not stated.", "", "```", RULES.rstrip(), "```", "",
             "| id | claim | verdict | why | seeds | settings | missing / diverged | published |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        cells = [r.id, r.claim, f"**{r.verdict}**", r.reason, r.n_seeds, str(r.n_settings),
                 f"{r.n_missing} / {r.n_diverged}", r.published]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "## Evidence", ""]
    for r in results:
        lines.append(f"### {r.id}: {r.verdict}")
        lines += [f"- {e}" for e in r.evidence] or ["- (no per-setting evidence)"]
        lines.append("")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tidy", required=True, type=Path, help="the tidy tables (results/tidy)")
    parser.add_argument("--stats", required=True, type=Path, help="the statistics (results/stats)")
    parser.add_argument("--out", required=True, type=Path, help="the report (paper_tables/claims.md); "
                        "a CSV with the same rows is written beside it")
    parser.add_argument("--scale-study", type=Path, default=None,
                        help="the scale study's table (paper_tables/scale_study.csv, normlab scale): adds its section")


def scale_section(table: pd.DataFrame) -> str:
    """The claims report's section on the scale study: where BN fails against LN, where its TID leaves
    the floor, and the per-factor findings, all generated from the scale table."""
    from .scale import findings

    done = table.dropna(subset=["bn_gap"])
    worse = done[(done["bn_gap"] < 0) & (done["bn_gap_p_holm"] < 0.05)]
    above = table[table["bn_excess"] > 2]
    seeds = sorted({int(n) for n in done["bn_gap_n"].dropna()})
    lines = ["", "## Scale study: at what scale does BN start to fail, and why", "",
             f"From `paper_tables/scale_study.md` ({len(done)} of {len(table)} factor levels with BN and LN runs; "
             f"seed pairs per point: {', '.join(map(str, seeds)) or 'none'}).", "",
             "- BN significantly worse than LN (Holm p < 0.05): "
             + (", ".join(f"{r.corpus} {r.factor}={r.level}" for r in worse.itertuples()) or "at no point") + ".",
             "- BN's end-of-training TID more than 2x its i.i.d. sampling floor: "
             + (", ".join(f"{r.corpus} {r.factor}={r.level} ({r.bn_excess:.1f}x)" for r in above.itertuples())
                or "at no point") + "."]
    lines += [f"- {line}" for line in findings(table)]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    tidy = read_tidy(args.tidy)
    results = evaluate(tidy, read_stats(args.stats))
    text = report(results, tidy["runs"])
    if args.scale_study is not None:
        text += scale_section(pd.read_csv(args.scale_study, dtype={"level": str}))
    atomic_write(args.out, lambda f: f.write(text.encode()))
    frame = pd.DataFrame([{k: v for k, v in r.__dict__.items() if k != "evidence"} | {
        "evidence": " | ".join(r.evidence)} for r in results])
    write_csv(frame, Path(args.out).with_suffix(".csv"))
    counts = frame["verdict"].value_counts()
    print(f"{len(results)} claims: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in
                                                  ("supported", "contradicted", "inconclusive")) + f" -> {args.out}")
    return 0
