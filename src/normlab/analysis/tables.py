"""``normlab tables``: the papers' tables from the statistics (contract §6); nothing is computed here.

Each table is built once as rows of :class:`Cell` and rendered three ways: Markdown, LaTeX (a
booktabs ``tabular`` written here, no template engine) and a long CSV with every number behind the
cells.  Every cell that has no value says why: ``no runs`` (not in the grid), ``missing``,
``diverged``.  Captions name the config's scale and seed count.

* ``table2_bn_rbn``: rows = datasets; columns = Post/Pre × LN/BN/RBN/PowerNorm (the RBN paper's
  Table 2), the primary test metric (population statistics), best of each placement in bold,
  † / ‡ = significantly better / worse than LN (paired t-test over seeds, Holm-adjusted p < 0.05), and
  the paper's number where it has one for that dataset (``paper``);
* ``ln_family``: w/o norm, LN, LN-simple, DetachNorm, AdaNorm (the AdaNorm paper's Tables A–C), marks
  vs LN (DetachNorm: vs LN-simple), a ``paper`` row under each dataset the paper also used;
* ``conditioning``: C50, C80, Cmax per layer, LN vs BN vs RBN (the measure claim A9 uses);
* ``runtime``: the train rule's wall time per norm from the Snakemake benchmark files.

A setting whose LN does not pass its learning bar is marked § (not testable: no marks).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from normlab.atomic import atomic_write

from . import published
from .labels import NORM_LABELS, NORM_ORDER, PERCENT_METRICS
from .labels import PLACEMENT_SHORT as PLACEMENT_LABELS
from .stats import read_settings, read_stats
from .tidy import write_csv

TABLE2_NORMS = ("ln", "bn", "rbn", "powernorm")
LN_FAMILY_NORMS = ("none", "ln", "ln_simple", "detachnorm", "adanorm")
CONDITIONING_NORMS = ("ln", "bn", "rbn")
ARROW = {True: "↑", False: "↓"}
MARKS = {"better": "†", "worse": "‡"}
LATEX_MARKS = {"better": r"$^{\dagger}$", "worse": r"$^{\ddagger}$"}
REFERENCE = {"detachnorm": "ln_simple"}  # the comparison a mark refers to (default: LN)
POWERNORM_NOTE = "PowerNorm = Shen et al.'s PN (GroupScaling, running quadratic mean, approximate backward)"


@dataclass
class Cell:
    text: str
    bold: bool = False
    mark: str = ""  # "better" / "worse" than the reference, or ""


@dataclass
class Table:
    name: str
    caption: str
    header: list[str]
    rows: list[list[Cell]]
    legend: list[str]
    data: pd.DataFrame  # the long CSV


# --- rendering -------------------------------------------------------------------------------------


def to_markdown(t: Table) -> str:
    def cell(c: Cell) -> str:
        text = c.text.replace("|", "\\|")
        text = f"**{text}**" if c.bold else text
        return text + MARKS.get(c.mark, "")

    lines = [f"**{t.caption}**", "", "| " + " | ".join(t.header) + " |",
             "|" + "|".join("---" for _ in t.header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines + [""] + [f"{line}  " for line in t.legend]) + "\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}", "±": r"$\pm$",
                  "↑": r"$\uparrow$", "↓": r"$\downarrow$", "†": r"$^{\dagger}$", "‡": r"$^{\ddagger}$",
                  "√": r"$\surd$", "−": "-", "×": r"$\times$", "–": "--", "—": "---", "≥": r"$\geq$",
                  "λ": r"$\lambda$", "⌊": r"$\lfloor$", "⌋": r"$\rfloor$", "<": r"$<$", ">": r"$>$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def to_latex(t: Table) -> str:
    def cell(c: Cell) -> str:
        text = latex_escape(c.text)
        return (rf"\textbf{{{text}}}" if c.bold else text) + LATEX_MARKS.get(c.mark, "")

    spec = "l" * 1 + "r" * (len(t.header) - 1)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(t.caption)}}}",
             rf"\label{{tab:{t.name}}}", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape(h) for h in t.header) + r" \\", r"\midrule"]
    lines += [" & ".join(cell(c) for c in row) + r" \\" for row in t.rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\par\footnotesize"]
    lines += [latex_escape(line) + r"\\" for line in t.legend]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_table(t: Table, out: Path) -> list[Path]:
    out = Path(out)
    paths = [out / f"{t.name}.md", out / f"{t.name}.tex", out / f"{t.name}.csv"]
    atomic_write(paths[0], lambda f: f.write(to_markdown(t).encode()))
    atomic_write(paths[1], lambda f: f.write(to_latex(t).encode()))
    write_csv(t.data, paths[2])
    return paths


# --- cells -----------------------------------------------------------------------------------------


def fmt(value: float, metric: str) -> str:
    if value is None or not math.isfinite(value):
        return "nan"
    if metric in PERCENT_METRICS:
        value *= 100
    return f"{value:.3g}" if abs(value) >= 1000 or (abs(value) < 0.01 and value != 0) else f"{value:.2f}"


def value_cell(s: pd.Series | None, metric: str) -> Cell:
    """'mean ± std (n)' of one summary row, or what happened to its runs."""
    if s is None or s["n_runs"] == 0:
        return Cell("no runs")
    n, div, mis = int(s["n"]), int(s["n_diverged"]), int(s["n_missing"])
    failed = ", ".join(x for x in (f"{div} diverged" if div else "", f"{mis} missing" if mis else "") if x)
    if n == 0:
        if div and not mis:
            return Cell(f"diverged ({div}/{int(s['n_runs'])})")
        if mis and not div:
            return Cell(f"missing ({mis}/{int(s['n_runs'])})")
        return Cell(failed or f"no value ({int(s['n_runs'])} runs)")
    std = "" if n < 2 else f" ± {fmt(s['std'], metric)}"
    return Cell(f"{fmt(s['mean'], metric)}{std} (n={n}{'; ' + failed if failed else ''})")


def _mark(comps: pd.DataFrame, norm: str, setting: dict, measure: str = "primary") -> tuple[str, pd.Series | None]:
    ref = REFERENCE.get(norm, "ln")
    sel = comps[(comps["comparison"] == f"{norm}-{ref}") & (comps["measure"] == measure)]
    for k, v in setting.items():
        sel = sel[sel[k] == v]
    if sel.empty:
        return "", None
    row = sel.iloc[0]
    if bool(row["significant"]):
        return ("better" if row["diff_mean"] > 0 else "worse"), row
    return "", row


def _bold_best(cells: dict[str, Cell], means: dict[str, float], higher: bool) -> None:
    finite = {k: v for k, v in means.items() if v is not None and math.isfinite(v)}
    if len(finite) < 2:
        return
    best = max(finite.values()) if higher else min(finite.values())
    for k, v in finite.items():
        if v == best:
            cells[k].bold = True


def scale_label(summary: pd.DataFrame) -> str:
    """'config test (its scale text), 3 seeds in the grid' from the statistics' summary rows a table shows."""
    if summary.empty:
        return "no runs"
    scales = ", ".join(sorted(summary["scale"].astype(str).unique()))
    configs = ", ".join(sorted(summary["config_name"].astype(str).unique()))
    return f"config {configs} ({scales}), {int(summary['n_runs'].max())} seeds in the grid"


NOT_TESTABLE = " §"


def _testable(bars: pd.DataFrame) -> dict[tuple, bool]:
    return {(r.config_name, r.dataset, r.placement): bool(r.testable) for r in bars.itertuples()}


# --- the tables ------------------------------------------------------------------------------------


def _primary_summary(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[(summary["measure"] == "primary") & (summary["stats"] == "population")]


def _lookup(frame: pd.DataFrame, **keys) -> pd.Series | None:
    sel = frame
    for k, v in keys.items():
        sel = sel[sel[k] == v]
    return None if sel.empty else sel.iloc[0]


def _norm_table(name: str, title: str, norms: tuple[str, ...], stats, paper_row) -> Table:
    """Rows = (config, dataset[, placement]) settings, columns = norms; marks from comparisons."""
    summary = _primary_summary(stats["summary"])
    summary = summary[summary["norm"].isin(norms)]
    comps = stats["comparisons"]
    testable = _testable(stats["learning_bars"])
    placements = [p for p in ("post", "pre") if p in set(summary["placement"])]
    by_placement_columns = name == "table2_bn_rbn"
    header = ["dataset", "metric"]
    if by_placement_columns:
        header += [f"{PLACEMENT_LABELS[p]} {NORM_LABELS[n]}" for p in placements for n in norms] + ["paper"]
    else:
        header += ["placement"] + [NORM_LABELS[n] for n in norms]
    rows, data = [], []
    for (config, dataset), g in summary.groupby(["config_name", "dataset"], sort=True):
        metrics = [m for m in g["metric"].dropna().astype(str) if m]
        metric = metrics[0] if metrics else "?"
        higher = bool(g["higher_is_better"].iloc[0])
        unit = " %" if metric in PERCENT_METRICS else ""
        row_start = [Cell(dataset), Cell(f"{metric}{unit} {ARROW[higher]}")]
        row = list(row_start)
        for placement in placements:
            cells, means = {}, {}
            ok = testable.get((config, dataset, placement), False)
            for norm in norms:
                s = _lookup(g, placement=placement, norm=norm)
                setting = dict(config_name=config, dataset=dataset, placement=placement)
                cells[norm] = value_cell(s, metric)
                if norm == "ln" and s is not None and not ok:
                    cells[norm].text += NOT_TESTABLE
                means[norm] = None if s is None or s["n"] == 0 else float(s["mean"])
                cells[norm].mark, comp = _mark(comps, norm, setting) if norm != "ln" else ("", None)
                data.append(dict(table=name, config_name=config, dataset=dataset, placement=placement, norm=norm,
                                 metric=metric, higher_is_better=higher, testable=ok,
                                 **{k: (None if s is None else s[k]) for k in
                                    ("mean", "std", "n", "n_runs", "n_missing", "n_diverged")},
                                 cell=cells[norm].text, reference=REFERENCE.get(norm, "ln") if comp is not None else "",
                                 diff_vs_reference=None if comp is None else comp["diff_mean"],
                                 p_holm_vs_reference=None if comp is None else comp["p_holm"],
                                 mark=cells[norm].mark))
            _bold_best(cells, means, higher)
            for d in data[-len(norms):]:
                d["best"] = cells[d["norm"]].bold
            if by_placement_columns:
                row += [cells[n] for n in norms]
            else:
                rows.append(row_start + [Cell(PLACEMENT_LABELS[placement])] + [cells[n] for n in norms])
        if by_placement_columns:
            row.append(Cell(paper_row(dataset, metric)))
            rows.append(row)
        else:
            paper = [published.ln_family_paper(dataset, n) for n in norms]
            if dataset in published.LN_FAMILY_PAPER:
                rows.append([Cell(f"{dataset} (paper)"), Cell(f"{metric}{unit}"), Cell("pre")] +
                            [Cell("diverged" if v is None else f"{v:g}") for v in paper])
    metrics = "/".join(sorted(set(summary["metric"].dropna().astype(str)) - {""}))
    legend = [f"Mean ± sample std over seeds (n = completed seeds) of the test {metrics}"
              " with population statistics; best of each placement in bold.",
              "† / ‡: significantly better / worse than " + ("LN (DetachNorm: than LN-simple)"
                                                            if "detachnorm" in norms else "LN") +
              " (paired t-test over seeds, two-sided, Holm-adjusted across the testable datasets × placements, "
              "p < 0.05).",
              "§: LN does not beat the trivial baseline by the declared margin (its learning bar, "
              "paper_tables/claims.md): the setting is not testable and gets no marks.",
              "'diverged' / 'missing': every seed of that cell diverged / has no result; partial failures are "
              "counted inside the cell; 'no runs': not in the configured grid."]
    if "powernorm" in norms:
        legend.append(POWERNORM_NOTE + ".")
    if by_placement_columns:
        legend.append(f"paper: {published.RBN_SOURCE}; shown only where our dataset is the paper's.")
    else:
        legend.append(f"paper rows: {published.LN_FAMILY_SOURCE}; shown only where our dataset is the paper's.")
    caption = f"{title} — {scale_label(summary)}"
    return Table(name, caption, header, rows, legend, pd.DataFrame(data))


def table2(stats) -> Table:
    def paper(dataset, metric):
        ref = published.rbn_paper(dataset)
        return "—" if ref is None else f"{ref[1]:g} (RBN, paper)"
    return _norm_table("table2_bn_rbn", "LN / BN / RBN / PowerNorm in Post- and Pre-Norm Transformers "
                       "(analogue of the RBN paper's Table 2)", TABLE2_NORMS, stats, paper)


def ln_family(stats) -> Table:
    return _norm_table("ln_family", "w/o Norm, LN, LN-simple, DetachNorm, AdaNorm (analogue of the AdaNorm "
                       "paper's Tables A–C)", LN_FAMILY_NORMS, stats, None)


def conditioning(stats, settings: dict | None = None) -> Table:
    """C50 / C80 / Cmax per norm module (the measure claim A9 uses), mean ± std over completed seeds;
    smallest in bold; * = a position claim A9 compares."""
    cond = stats["conditioning_summary"]
    cond = cond[cond["norm"].isin(CONDITIONING_NORMS) & cond["a9_measure"]] if len(cond) else cond
    summary = _primary_summary(stats["summary"])
    summary = summary[summary["norm"].isin(CONDITIONING_NORMS)]
    measures = ("c50", "c80", "cmax")
    header = ["dataset", "placement", "module"] + [f"{m.upper()} {NORM_LABELS[n]}" for m in measures
                                                   for n in CONDITIONING_NORMS]
    rows, data = [], []
    for (config, dataset, placement), g in summary.groupby(["config_name", "dataset", "placement"]):
        mine = cond[(cond["config_name"] == config) & (cond["dataset"] == dataset) & (cond["placement"] == placement)]
        modules = mine.sort_values("order").drop_duplicates("module")
        for module, a9 in (zip(modules["module"], modules["a9_position"], strict=True) if len(modules)
                           else [("(no probe data)", False)]):
            row = [Cell(dataset), Cell(PLACEMENT_LABELS.get(placement, placement)), Cell(module + (" *" if a9 else ""))]
            for m in measures:
                cells, means = {}, {}
                for norm in CONDITIONING_NORMS:
                    st = _lookup(g, norm=norm)
                    s = _lookup(mine, module=module, norm=norm, measure=m)
                    if s is None:
                        cells[norm], means[norm] = value_cell(st, m), None
                        if st is not None and st["n_runs"] and not st["n_diverged"] and not st["n_missing"]:
                            cells[norm] = Cell("no probe data")
                    else:
                        failed = 0 if st is None else int(st["n_runs"] - st["n_completed"])
                        cells[norm] = Cell(f"{fmt(s['mean'], m)}" + (f" ± {fmt(s['sd'], m)}" if s["n"] > 1 else "")
                                           + f" (n={int(s['n'])}{f'; {failed} not completed' if failed else ''})")
                        means[norm] = float(s["mean"])
                    data.append(dict(table="conditioning", config_name=config, dataset=dataset, placement=placement,
                                     module=module, a9_position=bool(a9), norm=norm, measure=m,
                                     mean=None if s is None else s["mean"], std=None if s is None else s["sd"],
                                     n=0 if s is None else int(s["n"]), n_runs=0 if st is None else int(st["n_runs"]),
                                     cell=cells[norm].text))
                _bold_best(cells, means, higher=False)
                row += [cells[n] for n in CONDITIONING_NORMS]
            rows.append(row)
    stat = (settings or {}).get("statistics", {})
    what = ("the centred covariance of what the linear layers after each norm see" if stat.get("a9_site") == "output"
            else "the OLD measure: the uncentred second moment of each norm's input (needs a re-run with the new "
                 "probe for the centred covariance at the norms' outputs)")
    legend = [f"Condition numbers at the end of training (normlab probe) of {what}: C50 = λ1/λ⌊C/2⌋, "
              "C80 = λ1/λ⌊0.8C⌋, Cmax = λ1 (largest eigenvalue).",
              "Mean ± sample std over completed seeds; smallest (best conditioned) of LN/BN/RBN in bold; "
              "* = the positions claim A9 compares (where the BN-family models normalise with batch statistics)."]
    return Table("conditioning", f"Layer-wise conditioning, LN vs BN vs RBN — {scale_label(summary)}", header, rows,
                 legend, pd.DataFrame(data))


def runtime(stats) -> Table:
    """Wall seconds of each rule per norm (mean ± std over seeds and placements), and × LN."""
    bench, summary = stats["runtime"], _primary_summary(stats["summary"])
    norms = [n for n in NORM_ORDER if n in set(summary["norm"])]
    header = ["rule", "dataset"] + [NORM_LABELS[n] for n in norms]
    rows, data = [], []
    rules = sorted(bench["rule"].unique()) if len(bench) else ["train"]
    for rule in rules:
        for (config, dataset), g in summary.groupby(["config_name", "dataset"]):
            row = [Cell(rule), Cell(dataset)]
            for norm in norms:
                s = _lookup(bench, config_name=config, rule=rule, dataset=dataset, norm=norm) if len(bench) else None
                st = g[g["norm"] == norm]
                if st.empty:
                    cell = Cell("no runs")
                elif s is None:
                    missing = int(st["n_missing"].sum())
                    cell = Cell("no benchmark" + (f" ({missing} missing)" if missing else ""))
                else:
                    ratio = f", {s['ratio_to_ln']:.2f}× LN" if norm != "ln" and math.isfinite(s["ratio_to_ln"]) else ""
                    std = f" ± {s['s_std']:.1f}" if s["n"] > 1 else ""
                    cell = Cell(f"{s['s_mean']:.1f}{std} s (n={int(s['n'])}{ratio})")
                row.append(cell)
                data.append(dict(table="runtime", config_name=config, rule=rule, dataset=dataset, norm=norm,
                                 s_mean=None if s is None else s["s_mean"], s_std=None if s is None else s["s_std"],
                                 n=0 if s is None else int(s["n"]),
                                 max_rss_mb=None if s is None else s["max_rss_mb"],
                                 cpu_time_s=None if s is None else s["cpu_time_s"], cell=cell.text))
            rows.append(row)
    legend = ["Wall-clock seconds of each workflow rule (Snakemake benchmark files), mean ± std over seeds and "
              "placements; × LN = ratio of means. Peak RSS and CPU time are in the CSV.",
              "This is training time, not inference latency: it does not test claim A10 on its own."]
    return Table("runtime", f"Runtime per rule and norm — {scale_label(summary)}", header, rows, legend,
                 pd.DataFrame(data))


def build_all(stats: dict, settings: dict | None = None) -> list[Table]:
    return [table2(stats), ln_family(stats), conditioning(stats, settings), runtime(stats)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stats", required=True, type=Path, help="the statistics (results/stats)")
    parser.add_argument("--out", required=True, type=Path, help="folder of the tables (paper_tables)")


def run(args: argparse.Namespace) -> int:
    tables = build_all(read_stats(args.stats), read_settings(args.stats))
    for t in tables:
        write_table(t, args.out)
    print(f"wrote {', '.join(t.name for t in tables)} (.md, .tex, .csv) -> {args.out}")
    return 0
