"""fetch -> unpack -> parse -> check counts -> build -> write, and load.  See `normlab.data` for the
public API."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from normlab.atomic import atomic_write_text

from . import registry
from .build import BUILDERS, Parsed
from .integrity import CorruptDataError, check_files, prepare_fix
from .sources import Lock, cache_root, obtain, read_members_record, unpacked_dir
from .store import DatasetSplit, load_split, read_meta, verify_prepared, write_prepared

PREP_VERSION = 1  # bump when preprocessing changes, so prepared folders are rebuilt


def fetch(
    name: str,
    cache: str | Path | None = None,
    *,
    lock: Lock | None = None,
    record_new: bool = True,
    fresh: bool = False,
    verify: bool = False,
) -> dict[str, Path]:
    """Fetch (and verify) every artifact of dataset `name`; unpack those with members (`fresh`:
    unpack again; the members of a folder unpacked before are checked against its record: sizes,
    and sha256 with `verify`).  Returns artifact key -> unpacked folder (or the raw file if nothing
    is unpacked)."""
    spec = registry.get(name)
    root = cache_root(cache)
    lock = lock if lock is not None else Lock.load()
    paths, record = {}, {}
    try:
        for art in spec.artifacts:
            paths[art.key] = obtain(art, root, lock, record_new=record_new, fresh=fresh, verify=verify)
            record[art.key] = {"file": art.filename, "sha256": lock.entries.get(art.key, {}).get("sha256")}
    except CorruptDataError as err:
        raise err.with_fix(prepare_fix(name, root)) from None
    # The stamp a workflow can depend on: written only once every artifact is verified, and left alone
    # when unchanged (prepare and the cards table re-verify through here; a newer stamp would make the
    # workflow re-prepare the dataset and re-train every run on it).
    stamp, text = fetched_stamp(name, cache), json.dumps({"dataset": name, "artifacts": record}, indent=2) + "\n"
    if not stamp.is_file() or stamp.read_text() != text:
        atomic_write_text(stamp, text)
    return paths


def fetched_stamp(name: str, cache: str | Path | None = None) -> Path:
    """CACHE/fetched/NAME.json: written by `fetch` after every artifact of NAME has been verified."""
    return cache_root(cache) / "fetched" / f"{name}.json"


def _fingerprint(spec, lock: Lock) -> str:
    payload = {
        "prep": PREP_VERSION,
        "options": spec.options,
        "inputs": {a.key: lock.entries.get(a.key, {}).get("sha256") for a in spec.artifacts},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def prepared_dir(name: str, cache: str | Path | None = None) -> Path:
    return cache_root(cache) / "prepared" / name


def _unpacked_records(spec, root: Path) -> dict[str, dict]:
    """artifact key -> the record of its unpacked folder (artifacts that are unpacked)."""
    return {a.key: read_members_record(unpacked_dir(a, root)) for a in spec.artifacts if a.members}


def _split_sizes(parsed: Parsed) -> dict[str, int]:
    # images: (images, labels); the other families: a list of examples
    return {s: len(v[1]) if isinstance(v, tuple) else len(v) for s, v in parsed.splits.items()}


def check_counts(spec, parsed: Parsed, paths: dict[str, Path], fix: str) -> None:
    """The parsed split sizes and raw counts against the spec's expected ones (where it declares
    them): a cut or changed source file that still parses is caught here."""
    problems = []
    if spec.expected_splits is not None and _split_sizes(parsed) != spec.expected_splits:
        problems.append(f"splits {_split_sizes(parsed)}, the registry expects {spec.expected_splits}")
    if spec.expected_raw_counts is not None:
        got = {k: parsed.raw_counts.get(k) for k in spec.expected_raw_counts}
        if got != spec.expected_raw_counts:
            problems.append(f"counts {got}, the registry expects {spec.expected_raw_counts}")
    if problems:
        where = ", ".join(str(p) for p in paths.values())
        problem = f"{spec.name} parsed " + "; ".join(problems) + " (a source file is cut or changed)"
        raise CorruptDataError(where, problem, fix)


def prepare(
    name: str,
    cache: str | Path | None = None,
    *,
    force: bool = False,
    lock: Lock | None = None,
    quiet: bool = False,
    verify: bool = False,
) -> Path:
    """Fetch if needed, then parse and build dataset `name` into CACHE/prepared/NAME.  An up-to-date
    preparation is kept after every file of it matched its recorded sha256 (`verify`: the unpacked
    members too); `force` unpacks and rebuilds from the verified downloads.  Returns that folder."""
    spec = registry.get(name)
    root = cache_root(cache)
    fix = prepare_fix(name, root)
    lock = lock if lock is not None else Lock.load()
    folder = prepared_dir(name, cache)
    paths = fetch(name, cache, lock=lock, fresh=force, verify=verify)
    fingerprint = _fingerprint(spec, lock)
    meta = read_meta(folder)
    if meta is not None and meta.get("fingerprint") == fingerprint and not force:
        n = verify_prepared(folder, name, hash=True)
        if verify and not quiet:
            print(f"[normlab.data] {name}: {n} prepared files and every source verified in {folder}")
        return folder
    records = _unpacked_records(spec, root)
    members = {key: record["members"] for key, record in records.items()}
    if not (force or verify):  # just unpacked (force) or hashed (verify) by fetch; else hash before parsing
        try:
            for art in spec.artifacts:
                if art.members:
                    check_files(unpacked_dir(art, root), members[art.key], hash=True)
        except CorruptDataError as err:
            raise err.with_fix(fix) from None
    t0 = time.perf_counter()
    parsed = spec.parse(paths)
    check_counts(spec, parsed, paths, fix)
    meta, stats, arrays, tokenizer = BUILDERS[spec.family](parsed, spec.options)
    meta.update({"name": name, "splits": list(arrays), "fingerprint": fingerprint})
    card = {
        "name": name,
        "title": spec.title,
        "family": spec.family,
        "stands_for": spec.stands_for,
        "default_corpus": spec.default,
        "license": spec.license,
        "sources": [
            {
                "artifact": a.key,
                "file": a.filename,
                "sha256": lock.entries.get(a.key, {}).get("sha256"),
                "size": lock.entries.get(a.key, {}).get("size"),
                "fetched_via": [s.describe() for s in a.sources],
                **(
                    {
                        "unpacked_from": records[a.key]["from"],
                        "unpacked_members": len(members[a.key]),
                        "unpacked_bytes": sum(m["size"] for m in members[a.key].values()),
                    }
                    if a.key in records
                    else {}
                ),
            }
            for a in spec.artifacts
        ],
        "raw_counts": parsed.raw_counts,
        "splits_rule": spec.splits,
        "preprocessing": spec.preprocessing,
        "vocab_size": meta.get("vocab_size"),
        "label_names": meta.get("label_names"),
        "splits": stats,
        "image_shape": meta.get("image_shape"),  # for normlab.train's parse-time check of model.patch_size
        "length_records": length_records(arrays),  # for its check of the token budget (normlab.train.fit)
        "prepared_in_s": round(time.perf_counter() - t0, 1),
    }
    write_prepared(folder, meta, card, arrays, tokenizer, inputs=members)
    if not quiet:
        print(f"[normlab.data] prepared {name} in {card['prepared_in_s']} s -> {folder}")
    return folder


def length_records(arrays: dict) -> dict:
    """Split -> sequence field -> ``[[index, length], ...]`` where the running maximum of the sequence
    lengths rises: the longest of the first n examples is the last record with index < n (a few
    dozen entries, however big the split)."""
    out = {}
    for split, fields in arrays.items():
        found = {}
        for key, offsets in fields.items():
            if key == "offsets" or key.endswith("_offsets"):
                lengths = np.diff(np.asarray(offsets))
                rises = np.flatnonzero(lengths > np.maximum.accumulate(np.r_[-1, lengths[:-1]]))
                found["tokens" if key == "offsets" else key.removesuffix("_offsets")] = [
                    [int(i), int(lengths[i])] for i in rises
                ]
        if found:
            out[split] = found
    return out


def load(
    name: str, split: str = "train", cache: str | Path | None = None, *, mmap: bool = True, verify: bool = False
) -> DatasetSplit:
    """Load one split of a prepared dataset (memory-mapped arrays).  Every file's size is checked
    against meta.json; the sha256 of every file too on the folder's first load or with `verify`.
    Raises FileNotFoundError naming `normlab prepare NAME` when it has not been prepared in this
    cache, CorruptDataError naming `normlab prepare NAME --force --cache DIR` when a file is damaged."""
    registry.get(name)
    return load_split(prepared_dir(name, cache), name, split, mmap=mmap, verify=verify)


def card(name: str, cache: str | Path | None = None) -> dict:
    path = prepared_dir(name, cache) / "card.json"
    if not path.exists():
        raise FileNotFoundError(f"no data card for {name} at {path}; run `normlab prepare {name}`")
    return json.loads(path.read_text())
