"""``normlab claims``: one verdict per claim (A1–A10, B1–B5) from the statistics, with its evidence.

    normlab claims --stats results/stats --out paper_tables/claims.md [--scale-study paper_tables/scale_study.csv]

Reads only the statistics tables and the declared settings ``normlab stats`` wrote (``analysis.json``).
The verdict rules are the small functions below; :data:`RULES` (printed at the top of the report) says
the same in words.  No rule looks at which answer the paper wants: each claim only names which
comparison, which test (superiority, "worse", non-inferiority) and which fraction of settings it asserts.
Verdicts: supported / contradicted / inconclusive / not testable here (with the reason).
"""

from __future__ import annotations

import argparse
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from normlab.atomic import atomic_write_text

from . import published
from .labels import BASELINE_LABELS, TID_SUMMARY_LABELS
from .stats import ALPHA, SETTING, minimum_detectable_effect, read_settings, read_stats
from .tidy import write_csv

MIN_PAIRS = 3  # a setting is tested only with at least this many complete seed pairs
GROWTH_FACTOR = 2.0  # TID "explodes": late/early online TID at least doubles ...
EXCESS_FACTOR = 2.0  # ... and batch_vs_population ends at least this many times above its floor
MIN_SETTINGS = 5  # a rank correlation across fewer settings cannot be significant (exact p >= 0.083 at n = 4)
GAP_CLOSED = 0.5  # A1: batch-statistics evaluation must recover at least half of BN's deficit to LN
VERDICTS = ("supported", "contradicted", "inconclusive", "not testable here")
LOW_TID_TASKS = ("image", "lm", "lm_stream")
HIGH_TID_TASKS = ("translation", "tagging", "classification")

RULES = f"""\
Verdict rules (normlab/analysis/claims.py; α = {ALPHA}, every test one-sided at α after Holm's correction
within its family = config × comparison × measure, over the testable settings):

0. A setting is testable only if its LN beats the declared trivial baseline by the declared margin
   (the learning bar, table below); a setting that fails is excluded from every count, and a claim with
   no testable setting is *not testable here*.  Claims settled by a unit test, not by runs (A10, B3),
   are *not testable here* too, with the test named.  A claim whose precondition is absent (A1 without
   a BN deficit) is *not testable here*.
1. Per testable setting with at least {MIN_PAIRS} complete seed pairs (fewer: *untested*), paired by seed,
   differences oriented so that + = the claim's first norm better:
   "A beats B": *better* if superiority is significant, *worse* if inferiority is, else a *tie*;
   "A ≥ B": *non-inferior* if A is significantly not worse than B by more than the declared margin,
   *inferior* if A is significantly worse by more than the margin, else undecided.  A tie is never
   support for a "≥" claim; a tie at low power is inconclusive.
2. A claim asserts that a fraction f of its testable settings succeed (every: f = 1; most: f > 1/2;
   A8: f ≥ 17/20).  With S successes, F failures and U undecided or untested settings: *supported* if
   S/(S+F+U) already reaches f; *contradicted* if even (S+U)/(S+F+U) cannot; else *inconclusive*.
3. TID claims (A2, A3), per setting over BN's completed seeds, on the declared TID summary over layers:
   log(batch_vs_population / floor) against log {EXCESS_FACTOR:g} and log(late / early online TID) against
   log {GROWTH_FACTOR:g} (one-sample t-tests, Holm within the claim).  "Explodes" needs both significantly
   above, and the floor must be the sentence floor (the token floor is a lower bound: above it is not
   above the sentence floor); "stays small" needs both significantly below.
4. A4 (rank correlation of BN's TID with BN − LN, relative, + = BN better): *supported* if Spearman's
   ρ < 0 with p < α and its interval below 0, across at least {MIN_SETTINGS} testable settings;
   *contradicted* if ρ > 0 likewise; else inconclusive; fewer than 3 settings: not testable.
5. A1 (needs a BN deficit: BN significantly worse than LN): per deficit setting, *success* if
   batch-statistics evaluation gains significantly and by at least {GAP_CLOSED:g} of the deficit, and BN's final
   training loss is equivalent to LN's within the loss margin (TOST); *failure* if the gain's interval
   lies below {GAP_CLOSED:g} of the deficit or BN's training loss is worse by more than the margin.
6. A9: per setting, RBN better on all of C50, C80, Cmax (mean log10 over the encoder's BN positions) is a
   success, significantly worse on any is a failure: the three measures count as one setting.
"""


# --- the rules ---------------------------------------------------------------------------------------


def _finite(x) -> bool:
    return x is not None and isinstance(x, int | float | np.floating) and math.isfinite(x)


def superiority_outcome(row) -> str:
    """'better' / 'worse' / 'tie' / 'untested' for "A beats B" in one setting (rule 1)."""
    if not (row["n_pairs"] >= MIN_PAIRS) or not _finite(row["p_holm_better"]):
        return "untested"
    if row["p_holm_better"] < ALPHA:
        return "better"
    if row["p_holm_worse"] < ALPHA:
        return "worse"
    return "tie"


def noninferiority_outcome(row) -> str:
    """'non-inferior' / 'inferior' / 'undecided' / 'untested' for "A ≥ B" in one setting (rule 1)."""
    if not (row["n_pairs"] >= MIN_PAIRS) or not _finite(row["p_holm_noninferior"]):
        return "untested"
    if row["p_holm_noninferior"] < ALPHA:
        return "non-inferior"
    if row["p_holm_inferior"] < ALPHA:
        return "inferior"
    return "undecided"


def fraction_verdict(outcomes: list[str], success: set[str], failure: set[str], threshold: float,
                     strict: bool = False) -> tuple[str, str]:
    """Rule 2: (verdict, reason) for "a fraction ``threshold`` of the testable settings succeed"."""
    total = len(outcomes)
    if total == 0:
        return "not testable here", "no testable setting"
    s = sum(o in success for o in outcomes)
    f = sum(o in failure for o in outcomes)
    u = total - s - f

    def reaches(x: float) -> bool:
        return x > threshold if strict else x >= threshold

    need = f"{'>' if strict else '≥'} {threshold:.3g} of testable settings"
    counts = f"{s} succeed, {f} fail, {u} undecided of {total}"
    if reaches(s / total):
        return "supported", f"{counts}; needs {need}"
    if not reaches((s + u) / total):
        return "contradicted", f"{counts}; needs {need}, unreachable"
    return "inconclusive", f"{counts}; needs {need}"


def one_sample_side(values, threshold: float) -> tuple[str, float, float]:
    """(side, p_greater, p_less): is the mean of ``values`` above or below ``threshold``?  The side is
    decided after Holm (see :func:`holm_sides`); 'unknown' with fewer than MIN_PAIRS values or none varying."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if len(values) < MIN_PAIRS or np.ptp(values) == 0:
        return "unknown", np.nan, np.nan
    return ("tested", float(sps.ttest_1samp(values, threshold, alternative="greater").pvalue),
            float(sps.ttest_1samp(values, threshold, alternative="less").pvalue))


def holm_sides(p_greater: list[float], p_less: list[float]) -> list[str]:
    """'above' / 'below' / 'unknown' per setting after Holm's correction of each side over the settings."""
    out = ["unknown"] * len(p_greater)
    for values, side in ((p_greater, "above"), (p_less, "below")):
        idx = [i for i, p in enumerate(values) if _finite(p)]
        if idx:
            adjusted = multipletests([values[i] for i in idx], alpha=ALPHA, method="holm")[1]
            for i, p in zip(idx, adjusted, strict=True):
                if p < ALPHA and out[i] == "unknown":
                    out[i] = side
    return out


def correlation_verdict(rho: float, p: float, ci_low: float, ci_high: float, n: int) -> tuple[str, str]:
    """Rule 4 (the expected sign is negative: larger TID, larger BN deficit)."""
    if n < 3 or not _finite(rho):
        return "not testable here", f"{n} testable setting(s) with a defined ρ"
    if n < MIN_SETTINGS:
        return "inconclusive", f"ρ = {rho:.2f} over {n} settings: fewer than {MIN_SETTINGS} cannot be significant"
    text = f"ρ = {rho:+.2f}, p = {p:.3g}, CI [{ci_low:+.2f}, {ci_high:+.2f}]"
    if rho < 0 and p < ALPHA and ci_high < 0:
        return "supported", text
    if rho > 0 and p < ALPHA and ci_low > 0:
        return "contradicted", text
    return "inconclusive", text


def combine(verdicts: list[str]) -> str:
    """Independent parts (e.g. placements): supported or contradicted only if no part disagrees."""
    tested = [v for v in verdicts if v != "not testable here"]
    if not tested:
        return "not testable here"
    if "supported" in tested and "contradicted" not in tested and "inconclusive" not in tested:
        return "supported"
    if "contradicted" in tested and "supported" not in tested and "inconclusive" not in tested:
        return "contradicted"
    return "inconclusive"


# --- evaluating each claim ---------------------------------------------------------------------------


@dataclass
class Result:
    id: str
    claim: str
    verdict: str = "inconclusive"
    reason: str = ""
    evidence: list[str] = field(default_factory=list)
    n_seeds: str = "—"
    n_settings: int = 0  # testable settings
    n_not_testable: int = 0
    effect: str = "—"
    interval: str = "—"
    mde: str = "—"
    test: str = "—"
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
UNIT_TESTS = {
    "A10": ("tests/norms/test_reference.py::test_bn_equals_batchnorm1d_unpadded_train_and_eval (BN's and so "
            "RBN's eval mode is torch's BatchNorm1d with the running statistics: a per-channel affine map) and "
            "tests/norms/test_powernorm.py::test_inference_is_a_per_channel_affine_map; the runs time training, "
            "not inference"),
    "B3": ("tests/norms/test_gradients.py::test_gradient_theorem_claim_b3 (the theorem's statements through "
           "our layers' backward passes on random float64 inputs, 1e-9)"),
}


def _pct(x: float) -> str:
    return "—" if not _finite(x) else f"{100 * x:+.3g} %"


def _signed(x: float) -> str:
    return "nan" if not _finite(x) else f"{x:+.2f}"


def _effect_texts(rows: pd.DataFrame, unit: str = "settings") -> tuple[str, str, str]:
    """(effect, interval, MDE) of a claim's testable comparison rows, relative (+ = the first norm
    better); one setting: its own numbers, several: the medians over settings (said so)."""
    rows = rows[rows["rel_effect"].notna()] if len(rows) else rows
    if not len(rows):
        return "—", "—", "—"
    if len(rows) == 1:
        r = rows.iloc[0]
        unit = f" (Δ {r['diff_mean']:+.3g} {r['metric']})" if _finite(r["diff_mean"]) else ""
        ci = "—" if not _finite(r["rel_ci_low"]) else f"[{_pct(r['rel_ci_low'])}, {_pct(r['rel_ci_high'])}]"
        return _pct(r["rel_effect"]) + unit, ci, "—" if not _finite(r["mde_rel"]) else f"{100 * r['mde_rel']:.3g} %"
    med = rows[["rel_effect", "rel_ci_low", "rel_ci_high", "mde_rel"]].median()
    k = len(rows)
    ci = "—" if not _finite(med["rel_ci_low"]) else f"median [{_pct(med['rel_ci_low'])}, {_pct(med['rel_ci_high'])}]"
    mde = "—" if not _finite(med["mde_rel"]) else f"median {100 * med['mde_rel']:.3g} %"
    return f"median {_pct(med['rel_effect'])} over {k} {unit}", ci, mde


def _describe(r, outcome: str = "") -> str:
    ci = "" if not _finite(r.ci_low) else f" [{_pct(r.rel_ci_low)}, {_pct(r.rel_ci_high)}]"
    p = "; ".join(f"{name} p_holm {getattr(r, col):.2g}" for name, col in
                  (("superiority", "p_holm_better"), ("inferiority", "p_holm_worse"),
                   ("non-inferiority", "p_holm_noninferior")) if _finite(getattr(r, col)))
    mde = "" if not _finite(r.mde_rel) else f"; MDE {100 * r.mde_rel:.3g} %"
    fails = r.n_missing_a + r.n_missing_b + r.n_diverged_a + r.n_diverged_b
    failed = f"; {r.n_missing_a + r.n_missing_b} missing, {r.n_diverged_a + r.n_diverged_b} diverged" if fails else ""
    note = f" ({r.note})" if isinstance(r.note, str) and r.note else ""
    return (f"{r.dataset}/{r.placement} {r.comparison} {r.metric}: Δ {r.diff_mean:+.3g} ({_pct(r.rel_effect)}{ci})"
            f", {p or 'no test'}{mde}, n={r.n_pairs}{failed}{note}" + (f" -> {outcome}" if outcome else ""))


def _rows(comps: pd.DataFrame, comparison: str, measure: str = "primary", tasks=None) -> pd.DataFrame:
    sel = comps[(comps["comparison"] == comparison) & (comps["measure"] == measure)]
    return sel[sel["task"].isin(tasks)] if tasks is not None else sel


def _split_testable(res: Result, rows: pd.DataFrame) -> pd.DataFrame:
    """The testable rows; the others are counted and listed with their reason (rule 0)."""
    bad = rows[~rows["testable"]]
    res.n_not_testable = len(bad)
    for r in bad.itertuples():
        res.evidence.append(f"{r.dataset}/{r.placement}: not testable ({r.not_testable_reason})")
    return rows[rows["testable"]]


def _fill_counts(res: Result, rows: pd.DataFrame) -> None:
    res.n_settings = len(rows)
    if len(rows):
        lo, hi = int(rows["n_pairs"].min()), int(rows["n_pairs"].max())
        res.n_seeds = str(lo) if lo == hi else f"{lo}–{hi}"
        res.n_missing = int(rows["n_missing_a"].sum() + rows["n_missing_b"].sum())
        res.n_diverged = int(rows["n_diverged_a"].sum() + rows["n_diverged_b"].sum())
        res.effect, res.interval, res.mde = _effect_texts(rows)
        fam, m = rows["family"].iloc[0], int(rows["holm_m"].max())
        res.test = (f"paired t; Holm over {m} setting(s) of {fam}" if m else
                    f"paired t: no test ({res.n_seeds} seed pair(s) per setting; a t-test needs ≥ 2, a verdict "
                    f"≥ {MIN_PAIRS})")


KINDS = {"beats": ({"better"}, {"worse"}), "worse": ({"worse"}, {"better"}),
         "≥": ({"non-inferior"}, {"inferior"})}


def paired_claim(cid: str, comps: pd.DataFrame, comparison: str, kind: str, threshold: float, strict: bool,
                 measure: str = "primary", tasks=None) -> Result:
    """A claim about one comparison's settings: "beats", "worse" or "≥" (rules 0-2)."""
    res = Result(cid, CLAIM_TEXT[cid], published=published.CLAIM_NUMBERS.get(cid, "—"))
    rows = _split_testable(res, _rows(comps, comparison, measure, tasks))
    _fill_counts(res, rows)
    success, failure = KINDS[kind]
    outcome = noninferiority_outcome if kind == "≥" else superiority_outcome
    outcomes = [outcome(r) for _, r in rows.iterrows()]
    res.verdict, res.reason = fraction_verdict(outcomes, success, failure, threshold, strict)
    if rows.empty:
        where = f" of task(s) {', '.join(tasks)}" if tasks else ""
        res.reason = (f"no testable setting{where}: {res.n_not_testable} not testable" if res.n_not_testable
                      else f"no {comparison} comparison{where} in this config's runs")
    if kind == "≥" and len(rows):
        margins = rows.drop_duplicates("metric")
        text = ", ".join(f"{r.metric} {r.margin:g}{' relative' if r.test_scale == 'log' else ''}"
                         for r in margins.itertuples())
        res.test = f"paired one-sided t, non-inferiority margin {text}; " + res.test.removeprefix("paired t; ")
    res.evidence = [_describe(r, o) for r, o in zip(rows.itertuples(), outcomes, strict=True)] + res.evidence
    return res


def _tid_rows(tsum: pd.DataFrame, tasks, declared: str) -> pd.DataFrame:
    return tsum[(tsum["kind"] == "mean_tid") & (tsum["norm"] == "bn") & (tsum["status"] == "completed")
                & tsum["task"].isin(tasks) & (tsum["summary"] == declared)]


def tid_claim(cid: str, stats: dict, tasks: tuple[str, ...], explode: bool, declared: str) -> Result:
    """A2 (explode=False: stays small) and A3 (explode=True), rule 3."""
    res = Result(cid, CLAIM_TEXT[cid])
    bars = stats["learning_bars"]
    t = _tid_rows(stats["tid_summary"], tasks, declared)
    settings = bars[bars["task"].isin(tasks)]
    has_bn = set(map(tuple, t[SETTING].drop_duplicates().to_numpy()))
    keys, excess_p, growth_p, texts = [], ([], []), ([], []), []
    for b in settings.itertuples():
        key = (b.config_name, b.dataset, b.placement)
        if key not in has_bn:
            continue
        if not b.testable:
            res.n_not_testable += 1
            res.evidence.append(f"{b.dataset}/{b.placement}: not testable ({b.reason})")
            continue
        mine = t[(t["config_name"] == key[0]) & (t["dataset"] == key[1]) & (t["placement"] == key[2])]
        _, eg, el = one_sample_side(np.log(mine["ratio_ref"]), math.log(EXCESS_FACTOR))
        _, gg, gl = one_sample_side(np.log(mine["growth"]), math.log(GROWTH_FACTOR))
        keys.append((key, mine))
        for store, values in ((excess_p, (eg, el)), (growth_p, (gg, gl))):
            store[0].append(values[0])
            store[1].append(values[1])
    excess_side, growth_side = holm_sides(*excess_p), holm_sides(*growth_p)
    outcomes = []
    for (key, mine), ex, gr in zip(keys, excess_side, growth_side, strict=True):
        floor_kind = mine["floor_ref_kind"].dropna().iloc[0] if mine["floor_ref_kind"].notna().any() else ""
        if explode and ex == "above" and floor_kind != "sentence":
            ex = "unknown (token floor only)"
        if explode:
            outcome = ("success" if gr == "above" and ex == "above" else "failure" if "below" in (gr, ex)
                       else "unknown")
        else:
            outcome = ("success" if ex == "below" and gr == "below" else "failure" if "above" in (gr, ex)
                       else "unknown")
        outcomes.append(outcome)
        ratio = np.exp(np.log(mine["ratio_ref"]).mean()) if mine["ratio_ref"].notna().any() else np.nan
        growth = np.exp(np.log(mine["growth"]).mean()) if mine["growth"].notna().any() else np.nan
        notes = "; ".join(sorted(set(mine["growth_note"].dropna()) - {""}))
        texts.append(f"{key[1]}/{key[2]}: batch_vs_population / {floor_kind or '?'} floor {ratio:.3g} ({ex} "
                     f"{EXCESS_FACTOR:g}×), growth late/early {growth:.3g} ({gr} {GROWTH_FACTOR:g}×"
                     f"{'; ' + notes if notes else ''}), n={len(mine)} -> {outcome}")
    res.evidence = texts + res.evidence
    res.n_settings = len(outcomes)
    if keys:
        counts = [len(m) for _, m in keys]
        res.n_seeds = str(min(counts)) if min(counts) == max(counts) else f"{min(counts)}–{max(counts)}"
        per = []
        for _, mine in keys:  # per setting: geometric mean ratio, t-interval on the logs, MDE at α / settings
            logs = np.log(mine["ratio_ref"].dropna())
            lo = hi = mde = np.nan
            if len(logs) >= 2 and np.ptp(logs) > 0:
                ci = sps.ttest_1samp(logs, 0.0).confidence_interval(0.95)
                lo, hi = float(np.exp(ci.low)), float(np.exp(ci.high))
                mde = minimum_detectable_effect(len(logs), float(np.std(logs, ddof=1)), ALPHA / len(keys))
            per.append((float(np.exp(logs.mean())) if len(logs) else np.nan, lo, hi, mde))
        with warnings.catch_warnings():  # an all-NaN column (one seed everywhere) is a NaN median, said so
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(np.array(per, dtype=float), axis=0)
        word = "" if len(keys) == 1 else f"median over {len(keys)} settings: "
        res.effect = f"{word}TID/floor {med[0]:.3g} ({TID_SUMMARY_LABELS[declared]})" if _finite(med[0]) else "—"
        res.interval = f"{word}[{med[1]:.3g}, {med[2]:.3g}]" if _finite(med[1]) else "— (one seed per setting)"
        res.mde = f"{word}×{np.exp(med[3]):.3g} on the ratio" if _finite(med[3]) else "—"
        res.test = f"one-sample t on log ratios vs log {EXCESS_FACTOR:g} and log growth vs log {GROWTH_FACTOR:g}; " \
                   f"Holm over {len(keys)} setting(s)"
    bn_runs = stats["summary"]
    bn_runs = bn_runs[(bn_runs["norm"] == "bn") & bn_runs["task"].isin(tasks) & (bn_runs["measure"] == "primary")
                      & (bn_runs["stats"] == "population")]
    res.n_missing, res.n_diverged = int(bn_runs["n_missing"].sum()), int(bn_runs["n_diverged"].sum())
    res.verdict, res.reason = fraction_verdict(outcomes, {"success"}, {"failure"}, 0.5, strict=True)
    if not outcomes:
        res.reason = (f"no testable setting of task(s) {', '.join(tasks)}: {res.n_not_testable} not testable"
                      if res.n_not_testable else f"no BN runs of task(s) {', '.join(tasks)} in this config")
    return res


def claim_a1(comps: pd.DataFrame) -> Result:
    res = Result("A1", CLAIM_TEXT["A1"])
    gap_rows = _split_testable(res, _rows(comps, "bn-ln"))
    _fill_counts(res, gap_rows)

    def pick(comparison, measure, key):
        sel = _rows(comps, comparison, measure)
        sel = sel[(sel["config_name"] == key[0]) & (sel["dataset"] == key[1]) & (sel["placement"] == key[2])]
        return None if sel.empty else sel.iloc[0]

    outcomes, deficits = [], []
    for _, r in gap_rows.iterrows():
        key = (r["config_name"], r["dataset"], r["placement"])
        if superiority_outcome(r) != "worse":
            res.evidence.append(f"{_describe(r)} -> no significant BN deficit here")
            continue
        deficits.append(r)
        gap = -r["estimate"]  # test units, positive
        fix, loss = pick("bn:batch_stats-population", "primary", key), pick("bn-ln", "final_train_loss", key)
        equivalent = loss is not None and _finite(loss["p_holm_equivalent"]) and loss["p_holm_equivalent"] < ALPHA
        loss_worse = loss is not None and _finite(loss["p_holm_inferior"]) and loss["p_holm_inferior"] < ALPHA
        if fix is None or not _finite(fix["ci_low"]):
            outcome = "unknown"
        elif fix["p_holm_better"] < ALPHA and fix["estimate"] >= GAP_CLOSED * gap and equivalent:
            outcome = "success"
        elif fix["ci_high"] < GAP_CLOSED * gap or loss_worse:
            outcome = "failure"
        else:
            outcome = "unknown"
        outcomes.append(outcome)
        fix_text = ("no batch-statistics evaluation" if fix is None else
                    f"batch-statistics evaluation gains {_pct(fix['rel_effect'])} [{_pct(fix['rel_ci_low'])}, "
                    f"{_pct(fix['rel_ci_high'])}]")
        loss_text = ("" if loss is None else
                     f"; final train loss BN−LN {_pct(loss['rel_effect'])}, equivalence p_holm "
                     f"{loss['p_holm_equivalent']:.2g}")
        res.evidence.append(f"{r['dataset']}/{r['placement']}: LN better by {_pct(-r['rel_effect'])}; {fix_text}"
                            f"{loss_text} -> {outcome}")
    if gap_rows.empty:
        res.verdict = "not testable here"
        res.reason = (f"no testable setting ({res.n_not_testable} not testable)" if res.n_not_testable
                      else "no BN and LN runs to compare")
    elif not outcomes:
        res.verdict = "not testable here"
        tested = sum(superiority_outcome(r) != "untested" for _, r in gap_rows.iterrows())
        res.reason = (f"precondition absent: no significant BN deficit to LN in any of {len(gap_rows)} testable "
                      f"setting(s) ({tested} with ≥ {MIN_PAIRS} seed pairs), so nothing to explain" if tested else
                      f"precondition untestable: with {res.n_seeds} seed pair(s) per setting no BN deficit to LN can "
                      f"be shown in any of {len(gap_rows)} testable setting(s) (a verdict needs ≥ {MIN_PAIRS})")
    else:
        res.verdict, res.reason = fraction_verdict(outcomes, {"success"}, {"failure"}, 0.5, strict=True)
        res.reason += f" (success: batch-statistics evaluation recovers ≥ {GAP_CLOSED:g} of the gap, training loss " \
                      "equivalent within the loss margin)"
        res.effect, res.interval, res.mde = _effect_texts(pd.DataFrame(deficits))
    return res


def claim_a4(stats: dict, declared: str) -> Result:
    res = Result("A4", CLAIM_TEXT["A4"])
    corr = stats["correlations"]
    main = corr[(corr["tid_measure"] == "observed") & (corr["kind"] == "mean_tid")
                & (corr["tid_summary"] == declared)] if len(corr) else corr
    verdicts = []
    for r in main.itertuples():
        v, why = correlation_verdict(r.rho, r.p, r.ci_low, r.ci_high, int(r.n_settings))
        verdicts.append(v)
        excluded = f"; excluded: {r.excluded}" if isinstance(r.excluded, str) and r.excluded else ""
        mde = f"smallest detectable |ρ| {r.mde_rho:.2f}" if _finite(r.mde_rho) else "no power at this n"
        res.evidence.append(f"{r.placement}: {why} ({r.p_method or 'no test'}; {r.ci_method or 'no interval'}; "
                            f"{mde}) over {r.n_settings} testable setting(s) "
                            f"[{r.settings}]{excluded} -> {v}")
    for r in corr[(corr["tid_measure"] != "observed") & (corr["kind"] == "mean_tid")].itertuples() if len(corr) else []:
        res.evidence.append(f"{r.placement}, TID in units of its floor: ρ = {r.rho:+.2f}, p = {r.p:.3g} "
                            f"(n={r.n_settings})")
    res.n_settings = int(main["n_settings"].sum()) if len(main) else 0
    res.n_not_testable = int(main["n_excluded"].sum()) if len(main) else 0
    res.verdict = combine(verdicts) if verdicts else "not testable here"
    res.reason = ("per placement: " + ", ".join(verdicts)) if verdicts else "no BN and LN runs with a TID"
    if len(main) == 1:
        r = main.iloc[0]
        res.effect = f"ρ = {r['rho']:+.2f}" if _finite(r["rho"]) else "—"
        res.interval = f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]" if _finite(r["ci_low"]) else "—"
        res.mde = f"|ρ| ≥ {r['mde_rho']:.2f}" if _finite(r["mde_rho"]) else "—"
    elif len(main):
        res.effect = "; ".join(f"{r.placement} ρ = {_signed(r.rho)}" for r in main.itertuples())
        res.interval = "; ".join(f"{r.placement} [{_signed(r.ci_low)}, {_signed(r.ci_high)}]"
                                 for r in main.itertuples())
        res.mde = "; ".join(f"{r.placement} " + (f"|ρ| ≥ {r.mde_rho:.2f}" if _finite(r.mde_rho) else "—")
                            for r in main.itertuples())
    res.test = f"Spearman ρ of BN's TID ({TID_SUMMARY_LABELS[declared]}) with BN − LN (relative), permutation p"
    return res


def claim_a6(comps: pd.DataFrame, declared: str) -> Result:
    res = paired_claim("A6", comps, "rbn-bn", "beats", 0.5, True, measure="tid")
    rows = _rows(comps, "rbn-bn", "tid")
    rows = rows[rows["testable"] & rows["rel_effect"].notna()]
    ratio = f"; median BN/RBN TID ratio {1 + rows['rel_effect'].median():.3g}" if len(rows) else ""
    res.reason += f" (lower end-of-training mean TID, {TID_SUMMARY_LABELS[declared]}, paired by seed{ratio})"
    return res


def claim_a9(comps: pd.DataFrame, measure_note: str) -> Result:
    res = Result("A9", CLAIM_TEXT["A9"])
    measures = ("log10_c50", "log10_c80", "log10_cmax")
    rows = comps[(comps["comparison"] == "rbn-ln") & comps["measure"].isin(measures)]
    rows = _split_testable(res, rows)
    res.n_not_testable //= len(measures)
    res.evidence = sorted(set(res.evidence))
    outcomes, texts = [], []
    for key, g in rows.groupby(SETTING):
        parts = {r["measure"]: superiority_outcome(r) for _, r in g.iterrows()}
        found = [parts.get(m, "untested") for m in measures]
        outcome = ("better" if all(o == "better" for o in found) else "worse" if "worse" in found
                   else "untested" if "untested" in found else "tie")
        outcomes.append(outcome)
        texts.append(f"{key[1]}/{key[2]}: " + ", ".join(f"{m.removeprefix('log10_')} {o}" for m, o in
                                                        zip(measures, found, strict=True)) + f" -> {outcome}")
        texts += [f"  {_describe(r)}" for r in g.itertuples()]
    res.evidence = texts + res.evidence
    _fill_counts(res, rows)
    res.effect, res.interval, res.mde = _effect_texts(rows, "setting × measure rows")
    res.n_settings = len(outcomes)
    res.verdict, res.reason = fraction_verdict(outcomes, {"better"}, {"worse"}, 0.5, True)
    res.reason += f" (per setting: all of C50, C80, Cmax; {measure_note})"
    if rows.empty:
        res.reason = ("no conditioning probes of RBN and LN runs in this config" if not res.n_not_testable
                      else f"no testable setting ({res.n_not_testable} not testable)")
    return res


def unit_test_claim(cid: str, extra: list[str] | None = None) -> Result:
    """A claim the runs cannot test: settled by a unit test (rule 0), named."""
    res = Result(cid, CLAIM_TEXT[cid], verdict="not testable here",
                 reason=f"settled by a unit test, not by the runs: {UNIT_TESTS[cid]}", test="unit test (CI)")
    res.evidence = [f"unit test: {UNIT_TESTS[cid]}"] + (extra or [])
    if cid == "B3":
        res.published = "Theorem (Xu et al. 2019, §3): stated exactly"
    return res


def claim_b4(comps: pd.DataFrame) -> Result:
    res = Result("B4", CLAIM_TEXT["B4"], published="poster: 'Compared to AdaNorm, LayerNorm has lower training "
                                                    "loss but higher validation loss'")
    outcomes, used = [], []
    for comparison in ("ln-ln_simple", "ln-adanorm"):
        train = _split_testable(res, _rows(comps, comparison, "final_train_loss"))
        valid = _rows(comps, comparison, "valid_loss")
        valid = valid[valid["testable"]]
        both = train.merge(valid, on=SETTING, suffixes=("_t", "_v"))
        used.append(train)
        for _, r in both.iterrows():
            o_t = superiority_outcome({k.removesuffix("_t"): r[k] for k in r.index if k.endswith("_t")})
            o_v = superiority_outcome({k.removesuffix("_v"): r[k] for k in r.index if k.endswith("_v")})
            outcome = ("success" if o_t == "better" and o_v == "worse"
                       else "failure" if o_t == "worse" or o_v == "better" else "unknown")
            outcomes.append(outcome)
            res.evidence.append(f"{r['dataset']}/{r['placement']} {comparison}: train loss {o_t} "
                                f"({_pct(r['rel_effect_t'])}), valid loss {o_v} ({_pct(r['rel_effect_v'])}) -> "
                                f"{outcome}")
    rows = pd.concat(used) if used else pd.DataFrame()
    if len(rows):
        _fill_counts(res, rows)
    res.n_settings = len(outcomes)
    res.verdict, res.reason = fraction_verdict(outcomes, {"success"}, {"failure"}, 0.5, True)
    if not outcomes and not res.n_not_testable:
        res.reason = "no ln-ln_simple or ln-adanorm loss comparison in this config's runs"
    return res


def evaluate(stats: dict, settings: dict) -> list[Result]:
    comps, declared = stats["comparisons"], settings["declared"]["tid_summary"]
    a9 = settings["statistics"]
    measure_note = ("the centred covariance of what the following linear layers see" if a9["a9_site"] == "output"
                    else "the OLD measure: the uncentred second moment of the norm's input")
    return [
        claim_a1(comps),
        tid_claim("A2", stats, LOW_TID_TASKS, explode=False, declared=declared),
        tid_claim("A3", stats, HIGH_TID_TASKS, explode=True, declared=declared),
        claim_a4(stats, declared),
        paired_claim("A5", comps, "bn-ln", "beats", 0.5, True, tasks=LOW_TID_TASKS),
        claim_a6(comps, declared),
        paired_claim("A7", comps, "rbn-bn", "≥", 1.0, False),
        paired_claim("A8", comps, "rbn-ln", "≥", 17 / 20, False),
        claim_a9(comps, measure_note),
        unit_test_claim("A10"),
        paired_claim("B1", comps, "ln_simple-ln", "≥", 0.5, True),
        paired_claim("B2", comps, "detachnorm-ln_simple", "worse", 0.5, True),
        unit_test_claim("B3"),
        claim_b4(comps),
        paired_claim("B5", comps, "adanorm-ln", "beats", 0.5, True),
    ]


# --- the report --------------------------------------------------------------------------------------

TABLE_HEADER = ["id", "claim", "verdict", "why", "seeds", "testable settings (not testable)", "effect",
                "95 % CI", "MDE", "test", "missing / diverged", "published"]


def _cells(r: Result) -> list[str]:
    return [r.id, r.claim, f"**{r.verdict}**", r.reason, r.n_seeds, f"{r.n_settings} ({r.n_not_testable})",
            r.effect, r.interval, r.mde, r.test, f"{r.n_missing} / {r.n_diverged}", r.published]


def _declared_text(settings: dict) -> list[str]:
    d = settings["declared"]
    margins = ", ".join(f"{m} {v['value']:g}{' relative' if v.get('relative') else ''}"
                        for m, v in d["margins"].items())
    bars = ", ".join(f"{m}: {BASELINE_LABELS.get(v['baseline'], v['baseline'])} "
                     f"{'+' if m != 'ppl' else '−'}{v['margin']:g}{' relative' if v.get('relative') else ''}"
                     for m, v in d["learning_bars"].items())
    w = d["tid_windows"]
    return [f"- TID summary the claims use: **{TID_SUMMARY_LABELS[d['tid_summary']]}** (declared before the "
            "results; docs/analysis_contract.md §5.1); the statistics tables hold all three.",
            f"- Non-inferiority margins: {margins}.",
            f"- Learning bars (LN must beat): {bars}.",
            f"- Growth windows: after {w['burn_in']:g}/momentum steps and the warm-up; early and late "
            f"{w['early']:g} / {w['late']:g} of the rest."]


def _bars_table(bars: pd.DataFrame) -> list[str]:
    lines = ["| setting | placement | metric | baseline | bar | LN (n) | testable | why |", "|" + "---|" * 8]
    for r in bars.itertuples():
        label = BASELINE_LABELS.get(r.baseline, r.baseline)
        base = "—" if not _finite(r.baseline_value) else f"{label} {r.baseline_value:.4g}"
        bar = "—" if not _finite(r.bar) else f"{r.bar:.4g}"
        ln = "—" if not _finite(r.ln_mean) else f"{r.ln_mean:.4g} ({r.ln_n})"
        lines.append(f"| {r.dataset} | {r.placement} | {r.metric} | {base} | {bar} | {ln} | "
                     f"{'yes' if r.testable else '**no**'} | {str(r.reason).replace('|', '/')} |")
    return lines


def report(results: list[Result], stats: dict, settings: dict) -> str:
    summary = stats["summary"]
    prim = summary[(summary["measure"] == "primary") & (summary["stats"] == "population")]
    counts = (f"{int(prim['n_completed'].sum())} completed, {int(prim['n_diverged'].sum())} diverged, "
              f"{int(prim['n_missing'].sum())} missing")
    configs = ", ".join(sorted(prim["config_name"].astype(str).unique())) or "none"
    scales = "; ".join(sorted(prim["scale"].astype(str).unique())) or "no runs"
    seeds = int(prim["n_runs"].max()) if len(prim) else 0
    lines = ["# Claims report", "",
             f"Generated by `normlab claims` from the statistics (`normlab stats`): config {configs} ({scales}), "
             f"{seeds} seed(s) per cell in the grid; {int(prim['n_runs'].sum())} runs ({counts}).",
             "Claims and their tests: A = Wang, Wu, Huang (NeurIPS 2022), B = Xu et al. (NeurIPS 2019). The RBN "
             "paper's full Table 2 could not be read: its published numbers are the eight listed there, probably "
             "RBN's, placement not stated.", "",
             "Declared before the runs (the workflow config's `analysis:` section):", ""]
    lines += _declared_text(settings)
    if settings.get("limitations"):
        lines += ["", "**What these tables cannot show** (re-run needed):", ""]
        lines += [f"- {note}" for note in settings["limitations"]]
    lines += ["", "```", RULES.rstrip(), "```", "",
              "| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    for r in results:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in _cells(r)) + " |")
    lines += ["", "Effect and interval: relative (+ = the claim's first norm better; perplexity and loss on the log "
              "scale); MDE: the smallest true effect a one-sided paired t at α / (Holm family size) detects with power "
              "0.8; several settings: medians over them (each setting in the evidence).", "",
              "## Learning bars: which settings are testable", ""] + _bars_table(stats["learning_bars"])
    lines += ["", "## Evidence", ""]
    for r in results:
        lines.append(f"### {r.id}: {r.verdict}")
        lines += [f"- {e}" for e in r.evidence] or ["- (no per-setting evidence)"]
        lines.append("")
    return "\n".join(lines)


def scale_section(table: pd.DataFrame) -> str:
    """The claims report's section on the scale study, generated from the scale table."""
    from .scale import findings

    done = table.dropna(subset=["bn_gap"])
    seeds = sorted({int(n) for n in done["bn_gap_n"].dropna()})
    worse = done[done["bn_gap_p_holm_worse"] < ALPHA]
    above = table[table["bn_ratio_first"] > EXCESS_FACTOR]
    lines = ["", "## Scale study: at what scale does BN start to fail, and why", "",
             f"From `paper_tables/scale_study.md` ({len(done)} of {len(table)} factor levels with BN and LN runs; "
             f"seed pairs per point: {', '.join(map(str, seeds)) or 'none'}; a single seed gives no interval and no "
             "test).", "",
             "- BN significantly worse than LN (one-sided, Holm p < 0.05): "
             + (", ".join(f"{r.corpus} {r.factor}={r.level}" for r in worse.itertuples()) or "at no point") + ".",
             f"- BN's first BN layer more than {EXCESS_FACTOR:g}× its floor (batch_vs_population / floor): "
             + (", ".join(f"{r.corpus} {r.factor}={r.level} ({r.bn_ratio_first:.1f}×)" for r in above.itertuples())
                or "at no point") + "."]
    lines += [f"- {line}" for line in findings(table)]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stats", required=True, type=Path, help="the statistics (results/stats)")
    parser.add_argument("--out", required=True, type=Path, help="the report (paper_tables/claims.md); "
                        "a CSV with the same rows is written beside it")
    parser.add_argument("--scale-study", type=Path, default=None,
                        help="the scale study's table (paper_tables/scale_study.csv, normlab scale): adds its section")


def run(args: argparse.Namespace) -> int:
    stats, settings = read_stats(args.stats), read_settings(args.stats)
    results = evaluate(stats, settings)
    text = report(results, stats, settings)
    if args.scale_study is not None:
        text += scale_section(pd.read_csv(args.scale_study, dtype={"level": str}))
    atomic_write_text(args.out, text)
    frame = pd.DataFrame([{k: v for k, v in r.__dict__.items() if k != "evidence"} | {
        "evidence": " | ".join(r.evidence)} for r in results])
    write_csv(frame, Path(args.out).with_suffix(".csv"))
    counts = frame["verdict"].value_counts()
    print(f"{len(results)} claims: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS) + f" -> {args.out}")
    return 0
