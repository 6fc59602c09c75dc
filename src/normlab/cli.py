"""The `normlab` command.  Each sub-command lives with the code it drives; this file only dispatches.

    normlab fetch NAME      download a dataset's sources (normlab.data)
    normlab prepare NAME    prepare a fetched dataset (normlab.data)
    normlab train ...       one training run (normlab.train)
    normlab probe | collect | baselines | stats | tables | claims | figures
                            analysis of finished runs (normlab.analysis)
    normlab provenance ...  what produced the regenerated outputs (normlab.provenance)
"""

from __future__ import annotations

import argparse
import importlib
import sys

# sub-command -> (module, help).  The module provides `add_arguments(parser)` and `run(args) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "fetch": ("normlab.data.cli_fetch", "download and checksum a dataset's sources"),
    "prepare": ("normlab.data.cli_prepare", "prepare a fetched dataset into the cache"),
    "train": ("normlab.train.cli", "run one training job from a run config"),
    "probe": ("normlab.analysis.probes", "TID decomposition and conditioning of one finished run"),
    "collect": ("normlab.analysis.tidy", "gather the runs of a manifest into tidy tables"),
    "baselines": ("normlab.analysis.baselines", "the trivial baselines of the learning bars, from the data"),
    "stats": ("normlab.analysis.stats", "seed statistics and paired comparisons from the tidy tables"),
    "tables": ("normlab.analysis.tables", "the papers' tables (Markdown, LaTeX, CSV)"),
    "claims": ("normlab.analysis.claims", "the claims report"),
    "figures": ("normlab.analysis.figures", "the figures (PDF, PNG)"),
    "scale": ("normlab.analysis.scale", "the scale study's table and figures (config/scale.yaml)"),
    "provenance": ("normlab.provenance", "commit, config hash, machine, date and wall time of a workflow run"),
}


def build_parser(only: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, object]]:
    """The parser; with ``only``, just that sub-command's module is imported (the analysis modules
    pull in scipy and matplotlib, seconds of start-up that a training job should not pay)."""
    parser = argparse.ArgumentParser(prog="normlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: dict[str, object] = {}
    for name, (module_name, help_text) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text)
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                continue  # that part of normlab is not installed in this version
            raise
        sp = sub.add_parser(name, help=help_text)
        module.add_arguments(sp)
        modules[name] = module
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    parser, modules = build_parser(only=command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(modules[args.command].run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
