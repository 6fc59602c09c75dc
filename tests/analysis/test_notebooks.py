"""The analysis notebooks: executed with papermill in a kernel of this interpreter; a failing cell
fails the execution with its error; the four notebooks run on the synthetic tidy fixture (slow)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from normlab.analysis import notebooks as N

from .tidy_fixture_figures import write_stats, write_tidy

ROOT = Path(__file__).resolve().parents[2]

TINY = '''# %% [markdown]
# # a tiny notebook

# %% tags=["parameters"]
tidy_dir = "results/tidy"
stats_dir = "results/stats"
tables_dir = "paper_tables"
figures_dir = "figures"

# %%
import sys
from pathlib import Path
assert Path(tidy_dir).is_absolute(), tidy_dir
print("executable", sys.executable)
print("tidy", tidy_dir)
'''


def _outputs(path: Path) -> list[dict]:
    nb = json.loads(path.read_text())
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]


def test_kernel_is_this_interpreter_in_its_prefix():
    from jupyter_client.kernelspec import KernelSpecManager

    name = N.ensure_kernel()
    spec = KernelSpecManager().get_kernel_spec(name)
    assert Path(spec.argv[0]) == Path(sys.executable)
    assert Path(spec.resource_dir).is_relative_to(Path(sys.prefix))
    assert N.ensure_kernel() == name  # idempotent


def test_parameters_reach_the_kernel_and_output_is_atomic(tmp_path):
    src = tmp_path / "tiny.py"
    src.write_text(TINY)
    out = N.execute_notebook(str(src), dict(tidy_dir="rel/tidy", stats_dir="s", tables_dir="t", figures_dir="f"),
                             out_dir=tmp_path / "executed")
    assert out == tmp_path / "executed" / "tiny.ipynb"
    text = "".join("".join(o.get("text", "")) for o in _outputs(out))
    assert f"executable {sys.executable}" in text
    assert f"tidy {Path('rel/tidy').resolve()}" in text
    assert [p.name for p in (tmp_path / "executed").iterdir()] == ["tiny.ipynb"]


def test_an_executed_notebook_opens_anywhere_relative_paths_python3_kernel_and_html(tmp_path):
    """Inside a project: the parameters and recorded paths are relative to its root (the notebook finds
    them from there), the kernel is the standard python3, it pairs with nothing, and --html writes the
    report's HTML beside it."""
    proj = tmp_path / "proj"
    (proj / "src" / "normlab").mkdir(parents=True)
    (proj / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (proj / "notebooks").mkdir()
    (proj / "results" / "tidy").mkdir(parents=True)
    (proj / "results" / "tidy" / "marker.txt").write_text("found me")
    (proj / "notebooks" / "tiny.py").write_text(TINY.replace(
        "assert Path(tidy_dir).is_absolute(), tidy_dir",
        "from normlab.analysis.notebooks import project_path\n"
        "print(project_path(tidy_dir).joinpath('marker.txt').read_text())"))
    params = dict(tidy_dir=proj / "results" / "tidy", stats_dir=proj / "results" / "stats",
                  tables_dir=proj / "paper_tables", figures_dir=tmp_path / "elsewhere")
    assert N.main([str(proj / "notebooks" / "tiny.py"), "--html", "--out", str(proj / "notebooks" / "executed"),
                   "--tidy", str(params["tidy_dir"]), "--stats", str(params["stats_dir"]),
                   "--tables", str(params["tables_dir"]), "--figures", str(params["figures_dir"])]) == 0
    out = proj / "notebooks" / "executed" / "tiny.ipynb"
    nb = json.loads(out.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert nb["metadata"]["jupytext"]["formats"] == "ipynb"
    record = nb["metadata"]["papermill"]
    elsewhere = str((tmp_path / "elsewhere").resolve())
    assert record["parameters"] == {"tidy_dir": "results/tidy", "stats_dir": "results/stats",
                                    "tables_dir": "paper_tables", "figures_dir": elsewhere}
    assert (record["input_path"], record["output_path"]) == ("notebooks/tiny.py", "notebooks/executed/tiny.ipynb")
    assert str(proj) not in out.read_text()  # only the folder outside the project stays absolute
    assert "found me" in "".join("".join(o.get("text", "")) for o in _outputs(out))
    html = (proj / "notebooks" / "executed" / "tiny.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "found me" in html
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.html", "tiny.ipynb"]


def test_a_failing_cell_fails_with_its_error(tmp_path):
    src = tmp_path / "broken.py"
    src.write_text(TINY + '\n# %%\nraise ValueError("planted failure 4711")\n\n# %%\nprint("never reached")\n')
    (tmp_path / "executed").mkdir()
    with pytest.raises(N.NotebookError, match=r"(?s)broken\.py failed in cell.*ValueError: planted failure 4711"):
        N.execute_notebook(str(src), dict(tidy_dir="a", stats_dir="b", tables_dir="c", figures_dir="d"),
                           out_dir=tmp_path / "executed")
    assert list((tmp_path / "executed").iterdir()) == []  # no half-executed notebook left as the output
    assert N.main([str(src), "--out", str(tmp_path / "executed")]) == 1


def test_notebooks_have_the_parameters_cell():
    import jupytext

    for name in N.NOTEBOOKS:
        nb = jupytext.read(ROOT / "notebooks" / f"{name}.py")
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, name
        for param in N.PARAMETERS:
            assert f"{param} = " in tagged[0].source, (name, param)
        # the figures are the library's, not redrawn in the notebook
        source = "".join(c.source for c in nb.cells)
        assert re.search(r"from normlab\.analysis import (figures as F|scale as S)", source), name
        # compute once, draw only: no statistic is computed in a notebook
        assert not re.search(r"\.(mean|std|median|var)\(|ttest|spearman|bootstrap", source), name


@pytest.mark.slow  # 18-30 s: four kernels and eleven figures on 2 shared cores
def test_every_notebook_executes_on_the_fixture(tmp_path):
    write_tidy(tmp_path / "tidy", datasets=["fashion_mnist", "bible_es_en"], seeds=(0, 1), steps=600)
    write_stats(tmp_path / "tidy", tmp_path / "stats")
    (tmp_path / "tables").mkdir()
    # a table as `normlab tables` would write it: the notebook must show its numbers
    pd.DataFrame({"dataset": ["bible_es_en"], "LN": ["17.93 ± 0.12"]}).to_csv(
        tmp_path / "tables" / "table2_bn_rbn.csv", index=False)
    params = dict(tidy_dir=tmp_path / "tidy", stats_dir=tmp_path / "stats", tables_dir=tmp_path / "tables",
                  figures_dir=tmp_path / "figures")
    for name in N.NOTEBOOKS:
        out = N.execute_notebook(name, params, out_dir=tmp_path / "executed")
        outputs = _outputs(out)
        assert not [o for o in outputs if o["output_type"] == "error"], name
        if name == "scale_study":  # the fixture has no sweep (tests/workflow runs one): the notebook says so
            assert "no sweep in this configuration" in out.read_text()
            continue
        assert any("image/png" in o.get("data", {}) for o in outputs), name
    performance = (tmp_path / "executed" / "performance.ipynb").read_text()
    assert "17.93 ± 0.12" in performance  # the table's numbers, not recomputed
    assert "declared): max" in (tmp_path / "executed" / "tid_dynamics.ipynb").read_text()


def test_a_kernel_that_dies_at_start_up_is_started_again(tmp_path, monkeypatch):
    import papermill

    real, calls = papermill.execute_notebook, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # what a port taken between choice and bind looks like
            raise RuntimeError("Kernel died before replying to kernel_info")
        return real(*args, **kwargs)

    monkeypatch.setattr(papermill, "execute_notebook", flaky)
    src = tmp_path / "tiny.py"
    src.write_text(TINY)
    out = N.execute_notebook(str(src), dict(tidy_dir="a", stats_dir="b", tables_dir="c", figures_dir="d"),
                             out_dir=tmp_path / "executed")
    assert len(calls) == 2 and out.is_file()
