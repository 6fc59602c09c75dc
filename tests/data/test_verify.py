"""Prepared and unpacked data are verified: truncated arrays, flipped bits, cut unpacked members,
wrong parsed counts and a missing meta.json are each reported in one line naming the file and
`normlab prepare NAME --force --cache DIR`; a clean folder is hashed once, on its first load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from normlab.cli import main
from normlab.data import integrity, load, prepare, registry
from normlab.data.integrity import CorruptDataError
from normlab.data.sources import Lock, unpacked_dir


def fix(cache) -> str:
    return f"run `normlab prepare tiny_bible --force --cache {cache.resolve()}`"


def one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


@pytest.fixture
def prepared(tmp_path, tiny_bible):
    cache = tmp_path / "c"
    folder = prepare("tiny_bible", cache, lock=tiny_bible, quiet=True)
    return cache, folder, tiny_bible


def flip_two_bits(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    data[-5] ^= 0x10
    path.write_bytes(bytes(data))


def test_truncated_array_is_named_with_the_fix(prepared):
    cache, folder, _ = prepared
    load("tiny_bible", "train", cache)  # verified once
    tokens = folder / "train" / "tokens.npy"
    tokens.write_bytes(tokens.read_bytes()[:-8])
    with pytest.raises(CorruptDataError) as err:
        load("tiny_bible", "train", cache)
    msg = one_line(err)
    assert msg.startswith(f"{tokens}: has ") and "were recorded when it was written" in msg
    assert msg.endswith(fix(cache)) and "mmap length" not in msg


def test_flipped_bits_are_caught_on_first_load_with_verify_and_by_prepare(prepared, capsys, monkeypatch):
    cache, folder, lock = prepared
    target = folder / "valid" / "target.npy"
    flip_two_bits(target)
    with pytest.raises(CorruptDataError) as err:
        load("tiny_bible", "train", cache)  # the first load hashes every file of the folder
    assert one_line(err).startswith(f"{target}: sha256 ") and str(err.value).endswith(fix(cache))
    flip_two_bits(target)  # flipped back: clean again
    load("tiny_bible", "train", cache)
    flip_two_bits(target)
    assert len(load("tiny_bible", "valid", cache)) == 5  # verified folder: sizes only, by design
    with pytest.raises(CorruptDataError, match="target.npy: sha256"):
        load("tiny_bible", "valid", cache, verify=True)
    with pytest.raises(CorruptDataError, match="target.npy: sha256"):
        prepare("tiny_bible", cache, lock=lock, quiet=True)  # an up-to-date preparation is hashed
    monkeypatch.setattr(Lock, "load", classmethod(lambda cls, path=None: lock))  # the CLI's lock
    assert main(["prepare", "tiny_bible", "--cache", str(cache)]) == 1
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].endswith(fix(cache))
    prepare("tiny_bible", cache, lock=lock, quiet=True, force=True)  # the fix works
    assert len(load("tiny_bible", "valid", cache, verify=True)) == 5


def test_cut_unpacked_member_is_caught_and_force_unpacks_again(prepared):
    cache, _, lock = prepared
    art = registry.DATASETS["tiny_bible"].artifacts[0]
    member = unpacked_dir(art, cache.resolve()) / "mods" / "en" / "ot.bzz"
    member.write_bytes(member.read_bytes()[: len(member.read_bytes()) // 2])
    with pytest.raises(CorruptDataError) as err:
        prepare("tiny_bible", cache, lock=lock, quiet=True)
    msg = one_line(err)
    assert msg.startswith(f"{member}: has ") and msg.endswith(fix(cache))
    prepare("tiny_bible", cache, lock=lock, quiet=True, force=True)
    assert prepare("tiny_bible", cache, lock=lock, quiet=True, verify=True)


def test_changed_unpacked_member_of_the_same_size_is_caught_by_verify_and_before_parsing(prepared, monkeypatch):
    cache, _, lock = prepared
    art = registry.DATASETS["tiny_bible"].artifacts[0]
    member = unpacked_dir(art, cache.resolve()) / "mods" / "es" / "nt.bzz"
    flip_two_bits(member)
    prepare("tiny_bible", cache, lock=lock, quiet=True)  # up to date, unpacked members not read: sizes only
    with pytest.raises(CorruptDataError, match=r"nt\.bzz: sha256 .*--force"):
        prepare("tiny_bible", cache, lock=lock, quiet=True, verify=True)
    spec = registry.DATASETS["tiny_bible"]
    monkeypatch.setitem(
        registry.DATASETS, "tiny_bible", registry.DatasetSpec(**{**spec.__dict__, "options": {"bpe_vocab_size": 100}})
    )
    with pytest.raises(CorruptDataError, match=r"nt\.bzz: sha256 .*--force"):
        prepare("tiny_bible", cache, lock=lock, quiet=True)  # a rebuild hashes what it parses


@pytest.mark.parametrize(
    "expected",
    [
        {"expected_splits": {"train": 30, "valid": 5, "test": 6}},
        {"expected_raw_counts": {"verse_pairs": 41}},
    ],
)
def test_wrong_parsed_counts_are_refused(tmp_path, tiny_bible, monkeypatch, expected):
    spec = registry.DATASETS["tiny_bible"]
    monkeypatch.setitem(registry.DATASETS, "tiny_bible", registry.DatasetSpec(**{**spec.__dict__, **expected}))
    cache = tmp_path / "c"
    with pytest.raises(CorruptDataError) as err:
        prepare("tiny_bible", cache, lock=tiny_bible, quiet=True)
    msg = one_line(err)
    assert "tiny_bible parsed " in msg and "the registry expects" in msg and "cut or changed" in msg
    assert str(unpacked_dir(spec.artifacts[0], cache.resolve())) in msg and msg.endswith(fix(cache))
    assert not (cache / "prepared" / "tiny_bible").exists()


def test_right_counts_pass(tmp_path, tiny_bible, monkeypatch):
    spec = registry.DATASETS["tiny_bible"]
    right = {"expected_splits": {"train": 30, "valid": 5, "test": 5}, "expected_raw_counts": {"verse_pairs": 40}}
    monkeypatch.setitem(registry.DATASETS, "tiny_bible", registry.DatasetSpec(**{**spec.__dict__, **right}))
    prepare("tiny_bible", tmp_path / "c", lock=tiny_bible, quiet=True)


def test_missing_or_old_meta_names_the_fix(prepared):
    cache, folder, lock = prepared
    meta = folder / "meta.json"
    old = json.loads(meta.read_text())
    meta.write_text(json.dumps({**old, "format": 1}))
    with pytest.raises(FileNotFoundError) as err:
        load("tiny_bible", "train", cache)
    assert "was prepared in format 1" in one_line(err) and str(err.value).endswith(fix(cache))
    meta.unlink()
    with pytest.raises(FileNotFoundError) as err:
        load("tiny_bible", "train", cache)
    assert one_line(err).startswith(f"{meta} is missing") and str(err.value).endswith(fix(cache))
    prepare("tiny_bible", cache, lock=lock, quiet=True)  # no usable meta: rebuilt without --force
    assert len(load("tiny_bible", "train", cache)) == 30


def test_meta_records_every_array_the_tokenizer_and_the_unpacked_inputs(prepared):
    cache, folder, _ = prepared
    files = json.loads((folder / "meta.json").read_text())["files"]
    on_disk = [p.relative_to(folder).as_posix() for p in folder.rglob("*.npy")] + ["tokenizer.json", "inputs.json"]
    assert sorted(files) == sorted(on_disk)
    assert files["train/tokens.npy"]["size"] == (folder / "train/tokens.npy").stat().st_size
    assert files["train/tokens.npy"]["sha256"] == integrity.sha256_of(folder / "train/tokens.npy")
    art = registry.DATASETS["tiny_bible"].artifacts[0]
    unpacked = unpacked_dir(art, cache.resolve())
    inputs = json.loads((folder / "inputs.json").read_text())[art.key]
    assert sorted(inputs) == sorted(p.relative_to(unpacked).as_posix() for p in unpacked.rglob("*.bz?"))
    assert inputs["mods/en/ot.bzz"]["sha256"] == integrity.sha256_of(unpacked / "mods/en/ot.bzz")
    source = json.loads((folder / "card.json").read_text())["sources"][0]
    assert source["unpacked_from"] == "mods.tgz" and source["unpacked_members"] == len(inputs)


def test_clean_folder_is_hashed_on_first_load_only(prepared, monkeypatch):
    cache, folder, lock = prepared
    hashed = []
    real = integrity.sha256_of
    monkeypatch.setattr(integrity, "sha256_of", lambda p: hashed.append(p.name) or real(p))
    n_files = len(json.loads((folder / "meta.json").read_text())["files"])
    assert not (folder / "verified.json").exists()
    first = load("tiny_bible", "train", cache)
    assert len(hashed) == n_files and (folder / "verified.json").exists()
    hashed.clear()
    for split in ("train", "valid", "test"):
        load("tiny_bible", split, cache)
    assert hashed == []
    load("tiny_bible", "test", cache, verify=True)
    assert len(hashed) == n_files
    assert np.array_equal(first.tokens.ids, load("tiny_bible", "train", cache).tokens.ids)
    prepare("tiny_bible", cache, lock=lock, quiet=True, force=True)  # a new folder is verified afresh
    assert not (folder / "verified.json").exists()


def test_read_only_cache_still_loads(prepared, monkeypatch):
    cache, folder, _ = prepared

    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr("normlab.data.store.atomic_write_text", refuse)
    assert len(load("tiny_bible", "train", cache)) == 30 and not (folder / "verified.json").exists()
