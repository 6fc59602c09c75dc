"""`normlab prepare NAME...`: fetch if needed, then build the prepared arrays and the data card.
An up-to-date preparation is kept once its files match their recorded sha256; `--verify` also hashes
the unpacked source members; `--force` unpacks and rebuilds from the verified downloads.
`normlab prepare --cards [--out paper_tables/datasets.md]` gathers the cards into one table."""

from __future__ import annotations

import argparse
import sys

from .cli_fetch import add_common, print_list, selected


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument(
        "--force", action="store_true", help="rebuild even if an up-to-date preparation exists"
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="also hash every unpacked source member (an up-to-date preparation's files are always hashed)",
    )
    parser.add_argument(
        "--cards",
        action="store_true",
        help="after preparing (or alone, with no NAME), write the datasets table "
        "(of the NAMEs given, else of every registered dataset)",
    )
    parser.add_argument("--out", default="paper_tables/datasets.md", help="where --cards writes the table")


def run(args) -> int:
    from .cards import write_datasets_md
    from .pipeline import prepare

    if args.list:
        return print_list()
    try:
        if args.names or args.all_defaults or not args.cards:
            for name in selected(args):
                prepare(name, args.cache, force=args.force, verify=args.verify)
        if args.cards:
            print(f"wrote {write_datasets_md(args.out, args.cache, args.names or None)}")
    except ValueError as err:  # a parsed corpus that fails a check of the build (labels, lengths)
        print(f"normlab prepare: {err}", file=sys.stderr)
        return 1
    return 0
