"""normlab tables on a synthetic tidy fixture: the expected cells, bold, marks, diverged/missing."""

from __future__ import annotations

import pandas as pd
import pytest

from normlab.analysis import stats, tables
from normlab.analysis.tidy import write_tidy
from normlab.cli import main

from .synthetic_tidy import synthetic_tidy

STATUS = {("ds_tr", "post", "bn", 1): "missing", ("ds_tr", "post", "bn", 2): "diverged",
          **{("ds_lm", "pre", "powernorm", s): "diverged" for s in range(1, 6)},
          **{("ds_cls", "pre", "powernorm", s): "missing" for s in range(1, 6)}}
DATASETS = {"ds_tr": ("translation", "bleu", 30.0, 1.0), "ds_lm": ("lm", "ppl", 50.0, 1.0),
            "ds_cls": ("classification", "accuracy", 0.8, 0.01),
            "rt_polarity": ("classification", "accuracy", 0.7, 0.01)}


@pytest.fixture(scope="module")
def built():
    tidy = synthetic_tidy(datasets=DATASETS, effects={("rbn", None, None): 1.0, ("detachnorm", None, None): -1.0},
                          status=STATUS)
    st = stats.compute(tidy)
    return tidy, st, {t.name: t for t in tables.build_all(st, stats.settings_record(tidy, None))}


def _cell(table, dataset, column, placement=None):
    col = table.header.index(column)
    for row in table.rows:
        if row[0].text == dataset and (placement is None or row[2].text == placement):
            return row[col]
    raise KeyError((dataset, column))


def test_table2_cells_bold_marks_and_failures(built):
    _, _, t = built
    t2 = t["table2_bn_rbn"]
    assert t2.header[:3] == ["dataset", "metric", "Post LN"] and t2.header[-1] == "paper"
    rbn = _cell(t2, "ds_tr", "Post RBN")
    assert rbn.bold and rbn.mark == "better" and "(n=5)" in rbn.text and " ± " in rbn.text
    assert not _cell(t2, "ds_tr", "Post LN").bold and _cell(t2, "ds_tr", "Post LN").mark == ""
    assert _cell(t2, "ds_tr", "Post BN").text.endswith("(n=3; 1 diverged, 1 missing)")
    assert _cell(t2, "ds_lm", "Pre PowerNorm").text == "diverged (5/5)"
    assert _cell(t2, "ds_cls", "Pre PowerNorm").text == "missing (5/5)"
    lm = _cell(t2, "ds_lm", "Post RBN")  # ppl: lower is better, RBN is planted better, so it is bold
    assert lm.bold and lm.mark == "better"
    assert float(lm.text.split()[0]) < float(_cell(t2, "ds_lm", "Post LN").text.split()[0])
    acc = _cell(t2, "ds_cls", "Post LN")
    assert 70 < float(acc.text.split()[0]) < 90  # accuracy printed in percent
    assert _cell(t2, "ds_tr", "paper").text == "—"  # a stand-in dataset gets no published number
    assert "config test (laptop)" in t2.caption and "5 seeds in the grid" in t2.caption


def test_table2_published_number_beside_ours(built):
    tidy, st, _ = built
    for frame in (st["summary"], st["comparisons"], st["learning_bars"]):
        frame.replace({"dataset": {"ds_tr": "iwslt14_de_en"}}, inplace=True)
    t2 = tables.table2(st)
    assert _cell(t2, "iwslt14_de_en", "paper").text == "35.6 (RBN, paper)"
    for frame in (st["summary"], st["comparisons"], st["learning_bars"]):
        frame.replace({"dataset": {"iwslt14_de_en": "ds_tr"}}, inplace=True)


def test_ln_family_marks_and_paper_rows(built):
    _, _, t = built
    lf = t["ln_family"]
    assert lf.header[3:] == ["w/o Norm", "LN", "LN-simple", "DetachNorm", "AdaNorm"]
    detach = _cell(lf, "ds_tr", "DetachNorm", "Post")
    assert detach.mark == "worse"  # vs LN-simple, planted 1 unit worse
    paper = next(r for r in lf.rows if r[0].text == "rt_polarity (paper)")
    assert [c.text for c in paper[3:]] == ["76.85", "77.21", "76.66", "76.4", "77.5"]
    assert not any(r[0].text == "ds_tr (paper)" for r in lf.rows)


def test_renderers_and_files(built, tmp_path):
    tidy, st, t = built
    md, tex = tables.to_markdown(t["table2_bn_rbn"]), tables.to_latex(t["table2_bn_rbn"])
    assert "**" in md and "†" in md and "diverged (5/5)" in md and "missing (5/5)" in md
    assert r"\toprule" in tex and r"\textbf{" in tex and r"$^{\dagger}$" in tex and "ds\\_tr" in tex
    body = "\n".join(line for line in tex.splitlines() if not line.startswith("\\label"))
    assert "±" not in body and "_" not in body.replace("\\_", "")  # escaped for LaTeX
    write_tidy(tidy, tmp_path / "tidy")
    assert main(["stats", "--tidy", str(tmp_path / "tidy"), "--out", str(tmp_path)]) == 0
    assert main(["tables", "--stats", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    for name in ("table2_bn_rbn", "ln_family", "conditioning", "runtime"):
        for ext in ("md", "tex", "csv"):
            assert (tmp_path / "out" / f"{name}.{ext}").stat().st_size > 0
    csv = pd.read_csv(tmp_path / "out" / "table2_bn_rbn.csv")
    rbn = csv[(csv["dataset"] == "ds_tr") & (csv["placement"] == "post") & (csv["norm"] == "rbn")].iloc[0]
    assert rbn["best"] and rbn["mark"] == "better" and rbn["p_holm_vs_reference"] < 0.05


def test_conditioning_and_runtime_tables(built):
    _, _, t = built
    cond = t["conditioning"]
    assert cond.header[3:6] == ["C50 LN", "C50 BN", "C50 RBN"]
    assert any("not completed" in c.text for r in cond.rows for c in r)
    rt = t["runtime"]
    cell = next(r for r in rt.rows if r[1].text == "ds_tr")[rt.header.index("RBN")]
    assert "1.10× LN" in cell.text


def test_no_runs_cell():
    tidy = synthetic_tidy(norms=("ln", "bn"), seeds=(1, 2))
    t2 = tables.table2(stats.compute(tidy))
    assert _cell(t2, "ds_tr", "Post RBN").text == "no runs"


def test_a_setting_whose_ln_did_not_learn_is_marked_and_gets_no_marks():
    tidy = synthetic_tidy(norms=("ln", "bn", "rbn"), seeds=(1, 2, 3), ln_at_chance=("ds_cls",),
                          effects={("rbn", None, None): 1.0})
    t2 = tables.table2(stats.compute(tidy))
    assert _cell(t2, "ds_cls", "Post LN").text.endswith(" §") and _cell(t2, "ds_cls", "Post RBN").mark == ""
    assert not _cell(t2, "ds_tr", "Post LN").text.endswith("§") and _cell(t2, "ds_tr", "Post RBN").mark == "better"
    assert any(line.startswith("§") for line in t2.legend)
