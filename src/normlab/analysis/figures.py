"""``normlab figures``: the papers' figures, drawn from the statistics (docs/analysis_contract.md §6).

    normlab figures --tidy results/tidy --stats results/stats --out figures

writes ``NAME.pdf`` and ``NAME.png`` for every name in :data:`FIGURES`, atomically, always: a figure
whose data is absent gets a panel that says so.  Each figure is a module of :mod:`normlab.analysis.plots`
(the notebooks call the same functions); they draw the tables of ``normlab stats`` and nothing else
but the tidy runs (statuses) and scores (one dot per seed).  Diverged runs are drawn apart and marked ×;
missing runs are counted in the titles; every TID is drawn beside its sampling floors.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from matplotlib.figure import Figure

from normlab.provenance import source_state

from .contract import FIGURES
from .plots import conditioning as _conditioning
from .plots import eval_mode_gap as _eval_mode_gap
from .plots import tid_bn_vs_rbn as _tid_bn_vs_rbn
from .plots import tid_curves as _tid_curves
from .plots import tid_decomposition as _tid_decomposition
from .plots import tid_vs_gap as _tid_vs_gap
from .plots import training_curves as _training_curves
from .plots.inputs import Inputs, load_inputs
from .plots.style import NO_RUNS

__all__ = ["FIGURES", "FIGURE_FUNCTIONS", "NO_RUNS", "Inputs", "figure_stamp", "load_inputs", "make_figures",
           "read_stamp", "save_figure"]

# each figure by name, as the notebooks call them: F.tid_curves(inputs)
tid_curves = _tid_curves.draw
tid_decomposition = _tid_decomposition.draw
tid_bn_vs_rbn = _tid_bn_vs_rbn.draw
tid_vs_gap = _tid_vs_gap.draw
eval_mode_gap = _eval_mode_gap.draw
training_curves = _training_curves.draw
conditioning = _conditioning.draw
FIGURE_FUNCTIONS: dict[str, Callable[[Inputs], Figure]] = {
    "tid_curves": tid_curves, "tid_decomposition": tid_decomposition, "tid_bn_vs_rbn": tid_bn_vs_rbn,
    "tid_vs_gap": tid_vs_gap, "eval_mode_gap": eval_mode_gap, "training_curves": training_curves,
    "conditioning": conditioning,
}
assert tuple(FIGURE_FUNCTIONS) == FIGURES


# The metadata field (PDF info dictionary, PNG text chunk) that carries a figure's provenance.
STAMP_KEY = "Keywords"
_STAMP = re.compile(r"normlab commit=(\S+) dirty=(\S+) config_sha256=(\S+)")


def figure_stamp(config_sha256: str | None) -> str:
    """What every figure carries in its metadata: the commit that drew it, whether the sources differed
    from it, and the configuration's hash, as ``paper_tables/provenance.json`` records them
    (:func:`normlab.provenance.source_state`, :func:`normlab.provenance.resolved_sha256`)."""
    state = source_state()
    dirty = {True: "true", False: "false"}.get(state["dirty"], "unknown")
    return f"normlab commit={state['commit'] or 'unknown'} dirty={dirty} config_sha256={config_sha256 or 'unknown'}"


def read_stamp(path: str | Path) -> dict[str, str]:
    """The stamp of a figure written by :func:`save_figure` (PDF or PNG): commit, dirty, config_sha256."""
    path = Path(path)
    if path.suffix == ".png":
        from PIL import Image

        with Image.open(path) as image:
            text = image.text.get(STAMP_KEY, "")
    else:  # matplotlib writes the PDF's info dictionary uncompressed
        hit = re.search(rb"/" + STAMP_KEY.encode() + rb" \((normlab [^)]*)\)", path.read_bytes())
        text = hit.group(1).decode() if hit else ""
    found = _STAMP.fullmatch(text)
    if not found:
        raise ValueError(f"{path} carries no normlab stamp in its {STAMP_KEY} metadata (drawn by an older normlab?)")
    return dict(zip(("commit", "dirty", "config_sha256"), found.groups(), strict=True))


def save_figure(fig: Figure, out_dir: str | Path, name: str, dpi: int = 150, stamp: str | None = None) -> list[Path]:
    """``NAME.pdf`` and ``NAME.png`` in ``out_dir``, each written to a temporary file and renamed;
    ``stamp`` (:func:`figure_stamp`) goes into both files' metadata."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    engine = fig.get_layout_engine()
    try:
        for ext in ("pdf", "png"):
            written.append(_save_one(fig, out_dir, name, ext, dpi, stamp))
            # laid out once: the second format reuses the first one's layout (constrained layout of a
            # many-panel figure costs as much as drawing it)
            fig.set_layout_engine("none")
    finally:
        fig.set_layout_engine(engine)
    return written


def _save_one(fig: Figure, out_dir: Path, name: str, ext: str, dpi: int, stamp: str | None) -> Path:
    """``NAME.EXT``, written to a temporary file and renamed."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".{ext}.tmp", dir=out_dir)
    os.close(fd)
    try:
        # fixed metadata: the same tables give byte-identical PDFs
        meta = {"CreationDate": None} if ext == "pdf" else {"Software": None}
        if stamp:
            meta[STAMP_KEY] = stamp
        fig.savefig(tmp, format=ext, dpi=dpi, metadata=meta)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a figure is for everyone
        os.replace(tmp, out_dir / f"{name}.{ext}")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_dir / f"{name}.{ext}"


def make_figures(tidy_dir: str | Path, stats_dir: str | Path | None, out_dir: str | Path,
                 names: tuple[str, ...] = FIGURES, stamp: str | None = None) -> list[Path]:
    """Every figure of ``names`` from the tables, each with ``stamp`` in its metadata; returns the files written."""
    unknown = [n for n in names if n not in FIGURE_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown figure(s) {', '.join(unknown)}; valid: {', '.join(FIGURES)}")
    inputs = load_inputs(tidy_dir, stats_dir)
    written = []
    for name in names:
        written += save_figure(FIGURE_FUNCTIONS[name](inputs), out_dir, name, stamp=stamp)
    return written


def add_stamp_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-sha256", default=None,
                        help="the configuration's hash (the workflow passes it) that every figure's metadata "
                             "carries beside the commit; default: unknown")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tidy", required=True, type=Path, help="the tidy tables (normlab collect --out)")
    parser.add_argument("--stats", type=Path, default=None,
                        help="the statistics (normlab stats --out); its files may be absent")
    parser.add_argument("--out", required=True, type=Path, help="folder for NAME.pdf and NAME.png")
    add_stamp_argument(parser)
    parser.add_argument("--only", nargs="+", choices=FIGURES, default=list(FIGURES), metavar="NAME",
                        help=f"draw only these figures (default: all of {', '.join(FIGURES)})")


def run(args: argparse.Namespace) -> int:
    if not args.tidy.is_dir():
        raise SystemExit(f"normlab figures: {args.tidy} is not a folder; run `normlab collect --out {args.tidy}` first")
    inputs_absent = load_inputs(args.tidy, args.stats).absent
    if inputs_absent:
        print(f"normlab figures: absent: {', '.join(inputs_absent)} (their panels say so)")
    for path in make_figures(args.tidy, args.stats, args.out, tuple(args.only), stamp=figure_stamp(args.config_sha256)):
        print(path)
    return 0
