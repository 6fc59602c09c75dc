"""Execute the analysis notebooks: jupytext py:percent -> ipynb -> papermill -> ``notebooks/executed/NAME.ipynb``.

    python -m normlab.analysis.notebooks tid_dynamics performance \\
        --tidy results/tidy --stats results/stats --tables paper_tables --figures figures

The notebooks (``notebooks/NAME.py``) take the papermill parameters ``tidy_dir``, ``stats_dir``,
``tables_dir`` and ``figures_dir`` and read only those folders.  They run in a Jupyter kernel of this
very interpreter: its kernelspec is written into this interpreter's prefix (the venv), under a name
unique to that prefix, so neither ``~/.local`` nor a same-named user kernel is involved.  The executed
notebook is written atomically; a failing cell fails the execution with that cell's error.

An executed notebook is for anyone who opens it: its parameters and the paths it records are relative to
the repository root (where they lie inside it), and its kernel is the standard ``python3``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from .contract import NOTEBOOKS as _ANALYSIS_NOTEBOOKS
from .contract import SCALE_NOTEBOOK

NOTEBOOKS = (*_ANALYSIS_NOTEBOOKS, SCALE_NOTEBOOK)
KERNEL_START_ATTEMPTS = 3
# the kernel an executed notebook names: Jupyter's standard one, whatever private kernel executed it
OPEN_KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
PARAMETERS = ("tidy_dir", "stats_dir", "tables_dir", "figures_dir")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class NotebookError(RuntimeError):
    """A notebook cell raised; the message names the notebook, the cell and its error."""


def project_root(start: str | Path | None = None) -> Path:
    """The folder holding ``pyproject.toml`` at or above ``start`` (the current folder by default)."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "src" / "normlab").is_dir():
            return folder
    return start


def project_path(path: str | Path) -> Path:
    """An absolute path; a relative one is taken from the project root, so that a notebook opened from
    ``notebooks/`` finds ``results/tidy`` as the workflow does."""
    path = Path(path)
    return path if path.is_absolute() else project_root() / path


def shown_path(path: str | Path, root: str | Path | None = None) -> str:
    """``path`` relative to the project root (``root``, default :func:`project_root`) where it lies inside
    it, else absolute: what an executed notebook records, so that it reads the same on every machine."""
    path, root = Path(path).resolve(), Path(root).resolve() if root else project_root()
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def kernel_name() -> str:
    """A kernel name unique to this interpreter's prefix."""
    return "normlab-" + hashlib.sha1(sys.prefix.encode()).hexdigest()[:10]


def ensure_kernel() -> str:
    """Install (once) a kernelspec that runs this interpreter into ``sys.prefix``; return its name.

    Written as a whole folder and renamed into place, so that notebooks executed in parallel never see
    a half-written spec.
    """
    from ipykernel.kernelspec import get_kernel_dict
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    name = kernel_name()
    kernels = Path(sys.prefix) / "share" / "jupyter" / "kernels"
    spec_dir = kernels / name
    if not (spec_dir / "kernel.json").is_file():
        kernels.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=kernels))
        spec = get_kernel_dict() | {"display_name": f"Python (normlab, {sys.prefix})"}
        (tmp / "kernel.json").write_text(json.dumps(spec, indent=1))
        try:
            os.rename(tmp, spec_dir)
        except OSError:  # another process installed it first
            (tmp / "kernel.json").unlink()
            tmp.rmdir()
    try:
        found = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise RuntimeError(f"the kernelspec {name} written to {spec_dir} is not on Jupyter's path; "
                           "check JUPYTER_PATH / JUPYTER_DATA_DIR") from None
    if Path(found.argv[0]) != Path(sys.executable):
        raise RuntimeError(f"kernel {name} runs {found.argv[0]}, not this interpreter {sys.executable}; "
                           f"remove {found.resource_dir} and run again")
    return name


def show_figure(fig, dpi: int = 100):
    """Display a figure of ``normlab.analysis.figures`` in a notebook as a PNG, whatever the backend."""
    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    display(Image(buf.getvalue()))


def show_table(tables_dir: str | Path, name: str):
    """A paper table's CSV (``normlab tables``) as a frame, or None with a note when it is not built."""
    import pandas as pd

    path = Path(tables_dir) / f"{name}.csv"
    if not path.is_file():
        print(f"{path} is not built yet: `normlab tables --tidy ... --out {Path(tables_dir)}` writes it")
        return None
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        print(f"{path} is empty")
        return None


def open_inputs(tidy_dir, stats_dir, tables_dir, figures_dir):
    """The notebooks' common first cell: the four folders made absolute, and what the figures read
    (the statistics tables, the tidy runs and scores); prints what is absent and what the tables cannot show."""
    from . import figures

    dirs = tuple(map(project_path, (tidy_dir, stats_dir, tables_dir, figures_dir)))
    inputs = figures.load_inputs(dirs[0], dirs[1])
    print("tidy tables:", shown_path(dirs[0]), "| statistics:", shown_path(dirs[1]), "| absent:",
          ", ".join(inputs.absent) or "none")
    for note in inputs.settings.get("limitations", []):
        print("cannot show:", note)
    return (*dirs, inputs)


def comparisons_among(inputs, norms):
    """The paired comparisons (``normlab stats``) whose two norms are both in ``norms``."""
    comparisons = inputs.comparisons
    if comparisons.empty:
        print("comparisons.csv is absent or empty: run `normlab stats`")
        return None
    return comparisons[comparisons[["norm_a", "norm_b"]].isin(set(norms)).all(axis=1)]


def default_notebooks_dir() -> Path:
    """``notebooks/`` of the project in the current folder, else of the checkout this package runs from."""
    for root in (project_root(), Path(__file__).resolve().parents[3]):
        if (root / "notebooks").is_dir():
            return root / "notebooks"
    raise FileNotFoundError("no notebooks/ folder in the current project or beside this package; pass --notebooks")


def _source(name: str, notebooks_dir: Path) -> Path:
    path = Path(name)
    if path.suffix == ".py" and path.is_file():
        return path
    path = notebooks_dir / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"no notebook {path}; the notebooks are {', '.join(NOTEBOOKS)}")
    return path


def execute_notebook(
    name: str,
    parameters: dict[str, str],
    out_dir: str | Path | None = None,
    notebooks_dir: str | Path | None = None,
    timeout: int = 1200,
    html: bool = False,
) -> Path:
    """Execute ``notebooks/NAME.py`` (or a ``.py`` path) with ``parameters``; return the executed ``.ipynb``.

    Relative parameter paths are taken from the current folder and passed relative to the notebook's
    project root (the kernel runs in the notebook's folder and the notebooks read them from that root;
    a folder outside the project is passed absolute).  ``html``: also ``NAME.html`` beside it (nbconvert),
    what ``snakemake --report`` shows.  Raises :class:`NotebookError` when a cell fails.
    """
    import jupytext
    import nbformat
    import papermill

    notebooks_dir = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    source = _source(name, notebooks_dir)
    stem = source.stem
    out_dir = Path(out_dir) if out_dir else source.parent / "executed"
    out_dir.mkdir(parents=True, exist_ok=True)
    root = project_root(source.parent)
    params = {k: shown_path(v, root) if k in PARAMETERS else v for k, v in parameters.items()}

    kernel = ensure_kernel()
    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": "Python (normlab)", "language": "python"}
    final = out_dir / f"{stem}.ipynb"
    with tempfile.TemporaryDirectory(prefix=f".{stem}.", dir=out_dir) as tmp:
        src_ipynb, out_ipynb = Path(tmp) / f"{stem}.source.ipynb", Path(tmp) / f"{stem}.ipynb"
        nbformat.write(nb, src_ipynb)
        try:
            for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
                try:
                    papermill.execute_notebook(
                        str(src_ipynb), str(out_ipynb), parameters=params, kernel_name=kernel,
                        cwd=str(source.parent), progress_bar=False, execution_timeout=timeout,
                    )
                    break
                except RuntimeError as err:
                    # Jupyter picks free TCP ports, then the kernel binds them: a notebook started at the
                    # same moment can take one in between ("Address already in use"; the kernel dies
                    # before it answers). Nothing ran yet, so starting again is safe.
                    if "Kernel died before replying" not in str(err) or attempt == KERNEL_START_ATTEMPTS:
                        raise
                    print(f"{source.name}: the kernel died at start-up ({err}); starting it again", file=sys.stderr)
                    time.sleep(0.5 * attempt)
        except papermill.PapermillExecutionError as err:
            trace = _ANSI.sub("", "\n".join(err.traceback))
            raise NotebookError(
                f"notebook {source} failed in cell {err.cell_index} (execution count {err.exec_count}):\n"
                f"{err.source}\n---\n{trace}\n{err.ename}: {err.evalue}"
            ) from None
        executed = nbformat.read(out_ipynb, as_version=4)
        executed.metadata["kernelspec"] = dict(OPEN_KERNELSPEC)
        # an output, not a source: paired with nothing (jupytext.toml pairs notebooks/NAME.py with an .ipynb)
        executed.metadata.setdefault("jupytext", {})["formats"] = "ipynb"
        # papermill records where it read and wrote: the source and the executed file, not the scratch copies
        record = executed.metadata.get("papermill", {})
        record.update(input_path=shown_path(source, root), output_path=shown_path(final, root))
        nbformat.write(executed, out_ipynb)
        if html:
            from nbconvert import HTMLExporter

            body, _ = HTMLExporter().from_notebook_node(executed)
            out_html = Path(tmp) / f"{stem}.html"
            out_html.write_text(body, encoding="utf-8")
            os.replace(out_html, final.with_suffix(".html"))
        os.replace(out_ipynb, final)
    return final


def main(argv: list[str] | None = None, prog: str = "python -m normlab.analysis.notebooks") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", metavar="NAME",
                        help=f"notebooks/NAME.py ({', '.join(NOTEBOOKS)}) or a path to a py:percent file")
    # not given: the notebook's own default (results/..., paper_tables, figures; the scale study's
    # notebook: the committed scale_study/ folders), taken from the repository root
    parser.add_argument("--tidy", default=None, help="tidy tables (default: the notebook's, e.g. results/tidy)")
    parser.add_argument("--stats", default=None, help="statistics (default: the notebook's, e.g. results/stats)")
    parser.add_argument("--tables", default=None, help="paper tables (default: the notebook's, e.g. paper_tables)")
    parser.add_argument("--figures", default=None, help="figures folder (default: the notebook's, e.g. figures)")
    parser.add_argument("--out", default=None, help="output folder (default: notebooks/executed)")
    parser.add_argument("--notebooks", default=None, help="folder of the NAME.py files (default: notebooks/)")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell (default: 1200)")
    parser.add_argument("--html", action="store_true", help="also write NAME.html beside each executed notebook")
    args = parser.parse_args(argv)
    given = dict(tidy_dir=args.tidy, stats_dir=args.stats, tables_dir=args.tables, figures_dir=args.figures)
    parameters = {k: v for k, v in given.items() if v is not None}
    for name in args.names:
        try:
            print(execute_notebook(name, parameters, out_dir=args.out, notebooks_dir=args.notebooks,
                                   timeout=args.timeout, html=args.html))
        except (NotebookError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
