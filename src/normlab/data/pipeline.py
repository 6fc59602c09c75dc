"""fetch -> unpack -> parse -> build -> write, and load.  See `normlab.data` for the public API."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from normlab.atomic import atomic_write_text

from . import registry
from .build import BUILDERS
from .sources import Lock, cache_root, fetch_artifact, unpack
from .store import DatasetSplit, load_split, read_meta, write_prepared

PREP_VERSION = 1  # bump when preprocessing changes, so prepared folders are rebuilt


def fetch(
    name: str, cache: str | Path | None = None, *, lock: Lock | None = None, record_new: bool = True
) -> dict[str, Path]:
    """Fetch (and verify) every artifact of dataset `name`; unpack those with members.
    Returns artifact key -> unpacked folder (or the raw file if nothing is unpacked)."""
    spec = registry.get(name)
    root = cache_root(cache)
    lock = lock if lock is not None else Lock.load()
    paths, record = {}, {}
    for art in spec.artifacts:
        raw = fetch_artifact(art, root, lock, record_new=record_new)
        paths[art.key] = unpack(art, raw, root) if art.members else raw
        record[art.key] = {"file": raw.name, "sha256": lock.entries.get(art.key, {}).get("sha256")}
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


def prepare(
    name: str,
    cache: str | Path | None = None,
    *,
    force: bool = False,
    lock: Lock | None = None,
    quiet: bool = False,
) -> Path:
    """Fetch if needed, then parse and build dataset `name` into CACHE/prepared/NAME (skipped when
    an up-to-date preparation is there, unless `force`).  Returns that folder."""
    spec = registry.get(name)
    lock = lock if lock is not None else Lock.load()
    folder = prepared_dir(name, cache)
    paths = fetch(name, cache, lock=lock)
    fingerprint = _fingerprint(spec, lock)
    meta = read_meta(folder)
    if meta is not None and meta.get("fingerprint") == fingerprint and not force:
        return folder
    t0 = time.perf_counter()
    parsed = spec.parse(paths)
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
    write_prepared(folder, meta, card, arrays, tokenizer)
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
    name: str, split: str = "train", cache: str | Path | None = None, *, mmap: bool = True
) -> DatasetSplit:
    """Load one split of a prepared dataset (memory-mapped arrays).  Raises FileNotFoundError
    naming `normlab prepare NAME` when it has not been prepared in this cache."""
    registry.get(name)
    return load_split(prepared_dir(name, cache), name, split, mmap=mmap)


def card(name: str, cache: str | Path | None = None) -> dict:
    path = prepared_dir(name, cache) / "card.json"
    if not path.exists():
        raise FileNotFoundError(f"no data card for {name} at {path}; run `normlab prepare {name}`")
    return json.loads(path.read_text())
