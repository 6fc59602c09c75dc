"""`normlab fetch NAME...`: download and checksum-verify a dataset's source files into the cache."""

from __future__ import annotations

import argparse

from . import registry
from .sources import Lock, cache_root


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="datasets (default: the default corpora); `--list` shows them all",
    )
    parser.add_argument("--all-defaults", action="store_true", help="every default corpus")
    parser.add_argument("--cache", default=None, help="cache folder (default: $NORMLAB_DATA or ./data_cache)")
    parser.add_argument("--list", action="store_true", help="list the registered datasets and exit")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="fail instead of recording the checksum of an artifact the lock file lacks",
    )


def selected(args) -> list[str]:
    names = list(args.names)
    if args.all_defaults or not names:
        names += [n for n in registry.DEFAULT_DATASETS if n not in names]
    for n in names:
        registry.get(n)
    return names


def print_list() -> int:
    for name, spec in registry.DATASETS.items():
        flag = "default" if spec.default else "paper  "
        print(f"{name:16s} {flag} {spec.family:15s} {spec.title}")
    return 0


def run(args) -> int:
    from .pipeline import fetch

    if args.list:
        return print_list()
    names = selected(args)
    lock = Lock.load()
    for name in names:
        paths = fetch(name, args.cache, lock=lock, record_new=not args.no_record)
        print(f"{name}: {len(paths)} artifact(s) verified in {cache_root(args.cache) / 'raw'}")
    return 0
