"""The ``normlab`` command.  Each sub-command lives with the code it drives (``COMMANDS`` says where);
this module builds the parser, imports only the module of the command that runs, and turns normlab's
own errors and a missing optional dependency into one line on stderr."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
from dataclasses import dataclass
from importlib import metadata

import normlab

DESCRIPTION = """\
normlab reproduces two papers end to end: why BatchNorm fails in NLP Transformers (the
training-inference discrepancy, TID, and Regularized BN; Wang et al., NeurIPS 2022) and the LayerNorm
family (LayerNorm-simple, DetachNorm, AdaNorm; Xu et al., NeurIPS 2019).  These commands are the steps
the Snakemake workflow runs; each works on its own too."""

EPILOG = """\
common commands:
  normlab fetch --list                          the registered datasets
  normlab prepare wnut16                        download, verify and prepare one dataset (./data_cache)
  normlab train --config RUN.yaml --out DIR     one training run (--resume continues it)
  normlab probe --run DIR --out DIR/probe       TID decomposition of a finished run
  normlab notebooks tid_dynamics                execute a notebook on the workflow's outputs
  snakemake --cores 2                           the whole default workflow (or: make run)

`normlab COMMAND --help` shows a command's options.  fetch, prepare, train and probe need only
`pip install normlab`; collect, baselines, stats, tables, claims, figures and scale need 'normlab[analysis]',
notebooks 'normlab[notebooks]', the workflow 'normlab[workflow]' (docs/install.md)."""


@dataclass(frozen=True)
class Command:
    module: str
    help: str
    # The exit status of normlab's own errors (ERRORS) in this command.
    error_exit: int = 2
    # A module with its own ``main(argv)``, which gets the arguments after the command's name as they
    # are (instead of ``add_arguments(parser)`` and ``run(args)``).
    passthrough: bool = False


# sub-command -> where it lives.  A module provides `add_arguments(parser)` and `run(args) -> int`.
COMMANDS: dict[str, Command] = {
    "fetch": Command("normlab.data.cli_fetch", "download and checksum a dataset's sources", error_exit=1),
    "prepare": Command("normlab.data.cli_prepare", "prepare a fetched dataset into the cache", error_exit=1),
    "train": Command("normlab.train.cli", "run one training job from a run config"),
    "probe": Command("normlab.tid.probe", "TID decomposition and conditioning of one finished run"),
    "collect": Command("normlab.analysis.tidy", "gather the runs of a manifest into tidy tables"),
    "baselines": Command("normlab.analysis.baselines", "each setting's trivial baseline (the learning bars)"),
    "stats": Command("normlab.analysis.stats", "seed statistics and paired comparisons from the tidy tables"),
    "tables": Command("normlab.analysis.tables", "the papers' tables (Markdown, LaTeX, CSV)"),
    "claims": Command("normlab.analysis.claims", "the claims report"),
    "figures": Command("normlab.analysis.figures", "the figures (PDF, PNG)"),
    "scale": Command("normlab.analysis.scale", "the scale study's table and figures (config/scale.yaml)"),
    "notebooks": Command("normlab.analysis.notebooks", "execute the analysis notebooks (papermill)", error_exit=1,
                         passthrough=True),
    "provenance": Command("normlab.provenance", "commit, config hash, machine, date and wall time of a workflow run"),
}

# normlab's own error classes, (module, name): their message is the whole story, so they end a command
# with one line instead of a traceback.  Looked up in sys.modules when one is raised: an error can only
# come from a module that is loaded, and the handler imports nothing (no torch for `normlab stats`).
ERRORS: tuple[tuple[str, str], ...] = (
    ("normlab.train.errors", "ConfigError"),
    ("normlab.train.errors", "OutputExistsError"),
    ("normlab.train.errors", "RunLockedError"),  # another process writes the run folder
    ("normlab.train.errors", "RunStateError"),  # a run folder's own files are damaged
    ("normlab.atomic", "WriteError"),  # ENOSPC, EACCES, EROFS, named as themselves
    ("normlab.workflow", "WorkflowConfigError"),
    ("normlab.data.errors", "DataError"),  # and its subclasses: checksum, fetch, parse, unknown dataset
    ("normlab.tid.probe", "NotAFinishedRun"),
    ("normlab.analysis.notebooks", "NotebookError"),
)

# Top-level modules of the optional dependencies -> the extra of pyproject.toml that installs them.
EXTRAS: dict[str, str] = {
    **dict.fromkeys(("pandas", "scipy", "statsmodels", "matplotlib", "seaborn"), "analysis"),
    **dict.fromkeys(("snakemake", "snakemake_executor_plugin_slurm"), "workflow"),
    **dict.fromkeys(("jupytext", "papermill", "ipykernel", "nbformat", "jupyter_client", "IPython"), "notebooks"),
}


def version_text() -> str:
    try:
        torch = metadata.version("torch")  # the installed version, without importing torch (seconds)
    except metadata.PackageNotFoundError:
        torch = "not installed"
    return f"normlab {normlab.__version__} (torch {torch}, Python {platform.python_version()})"


def build_parser(only: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, object]]:
    """The parser.  Only the module of ``only`` is imported (the analysis modules pull in scipy and
    matplotlib, seconds of start-up that a training job should not pay); without it, none is."""
    parser = argparse.ArgumentParser(
        prog="normlab", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: dict[str, object] = {}
    for name, command in COMMANDS.items():
        if name != only or command.passthrough:
            sub.add_parser(name, help=command.help)
            continue
        try:
            module = importlib.import_module(command.module)
        except ModuleNotFoundError as err:
            if err.name and command.module.startswith(err.name):
                continue  # that part of normlab is not installed in this version
            raise
        sp = sub.add_parser(name, help=command.help, description=command.help)
        module.add_arguments(sp)
        modules[name] = module
    return parser, modules


def own_error_classes() -> tuple[type[BaseException], ...]:
    return tuple(getattr(sys.modules[m], name) for m, name in ERRORS if m in sys.modules)


def missing_extra(err: ModuleNotFoundError) -> str | None:
    """The extra that installs the module ``err`` is about, if it is an optional dependency."""
    return EXTRAS.get((err.name or "").partition(".")[0])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    try:
        if command is not None and COMMANDS[command].passthrough:
            module = importlib.import_module(COMMANDS[command].module)
            return int(module.main(argv[1:], prog=f"normlab {command}") or 0)
        parser, modules = build_parser(only=command)
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(modules[args.command].run(args) or 0)
    except ModuleNotFoundError as err:
        extra = missing_extra(err)
        if extra is None:
            raise
        hint = f"pip install 'normlab[{extra}]'" + (" (or 'normlab[workflow]', which includes it)"
                                                    if extra == "analysis" else "")
        print(f"normlab {command}: needs {err.name}, which is not installed: {hint}", file=sys.stderr)
        return 2
    except Exception as err:
        if not isinstance(err, own_error_classes()):
            raise
        print(f"normlab {command}: {err}", file=sys.stderr)
        return COMMANDS[command].error_exit if command else 2


if __name__ == "__main__":
    sys.exit(main())
