"""WebDataset tar shards of a finished folder export, for training that scales out (SPEC §8, issue 15).

A shard export holds, per split, ``<split>-000000.tar``, ``<split>-000001.tar``, … of at most `shard_size`
samples each. A sample is three consecutive tar members sharing one key: ``<key>.jpg`` (the export's image
bytes), ``<key>.wav`` (the export's clip bytes) and ``<key>.json`` (id, class, class index, split and the whole
metadata.csv row). The key is the sample id, except that ``.`` is written ``%2E``: the webdataset library takes
everything after the first dot of a member name as its extension, so an id ``a.b`` would otherwise split in two.

Beside the shards: the export's other files (README.md, ATTRIBUTION.csv, metadata.csv, splits/, the figures,
whatever the folder export carried besides ``vision/`` and ``sound/``) and a ``manifest.json`` of the same shape
as the folder export's (:func:`dataset.layout.manifest_bytes`): ``parameters.format`` is ``webdataset``,
``counts.per_shard`` gives the samples of each shard, and ``files`` the sha256 of every shard and side file, so
``verify`` checks shards like any other file; :func:`check_shards` also opens every shard.

Deterministic: samples in a fixed pseudo-random order within each split (sha256 of the id, so every shard mixes
classes and recordings), members with a fixed mtime, owner and mode, so a re-export is byte-identical.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from annotator.errors import DatasetError
from annotator.files import sha256_file
from annotator.vocabulary import SceneClass
from dataset.layout import (
    MANIFEST_FILE,
    SOUND_DIR,
    VISION_DIR,
    image_relpath,
    read_manifest,
    read_metadata,
    sound_relpath,
)

#: ``parameters.format`` of a shard export's manifest.
SHARD_FORMAT = "webdataset"
DEFAULT_SHARD_SIZE = 1000
SPLITS = ("train", "val", "test")
#: Member extensions of one sample, in the order they are written.
IMAGE_EXT, SOUND_EXT, JSON_EXT = "jpg", "wav", "json"
SAMPLE_EXTS = (IMAGE_EXT, JSON_EXT, SOUND_EXT)
#: mtime of every tar member (2000-01-01 UTC): fixed so a re-export is byte-identical.
MEMBER_MTIME = 946_684_800
_SHARD_NAME = re.compile(r"^(train|val|test)-(\d{6})\.tar$")


def shard_name(split: str, number: int) -> str:
    """``train-000000.tar``: the name of a split's `number`-th shard."""
    return f"{split}-{number:06d}.tar"


def split_of_shard(name: str) -> str | None:
    """The split a shard's file name says (``val-000003.tar`` → ``val``), or None for another name."""
    match = _SHARD_NAME.match(name.rsplit("/", 1)[-1])
    return match.group(1) if match else None


def sample_key(sample_id: str) -> str:
    """The tar key of a sample: its id with ``.`` written ``%2E`` (see the module docstring)."""
    return sample_id.replace(".", "%2E")


def id_of_key(key: str) -> str:
    """The sample id of a tar key (inverse of :func:`sample_key`)."""
    return key.replace("%2E", ".")


def sample_json_bytes(row: Mapping[str, str]) -> bytes:
    """``<key>.json``: id, class, class index (the model head's order), split and the metadata.csv row."""
    cls = SceneClass.parse(row["class"])
    document = {"id": row["id"], "class": cls.value, "label": cls.index, "split": row["split"], "metadata": dict(row)}
    return (json.dumps(document, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


# ------------------------------------------------------------------------------------------ writing


@dataclass(frozen=True)
class ShardInfo:
    """One written shard: its file name, number of samples, size and sha256."""

    name: str
    split: str
    samples: int
    bytes: int
    sha256: str


@dataclass
class ShardReport:
    """What :func:`pack_export` wrote."""

    out: Path
    shard_size: int
    shards: list[ShardInfo] = field(default_factory=list)
    side_files: list[str] = field(default_factory=list)

    def per_split(self) -> dict[str, int]:
        """Samples per split."""
        return {s: sum(i.samples for i in self.shards if i.split == s) for s in SPLITS}

    def shard_count(self) -> dict[str, int]:
        """Shards per split."""
        return {s: sum(1 for i in self.shards if i.split == s) for s in SPLITS}

    @property
    def total_bytes(self) -> int:
        return sum(i.bytes for i in self.shards)

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "format": SHARD_FORMAT,
            "shard_size": self.shard_size,
            "per_split": self.per_split(),
            "shards_per_split": self.shard_count(),
            "bytes": self.total_bytes,
            "shards": [
                {"name": i.name, "samples": i.samples, "bytes": i.bytes, "sha256": i.sha256} for i in self.shards
            ],
            "side_files": self.side_files,
        }


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, MEMBER_MTIME, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _order_in_split(rows: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """A fixed pseudo-random order (sha256 of the id, then the id): every shard mixes classes and recordings."""
    return sorted(rows, key=lambda r: (hashlib.sha256(r["id"].encode()).hexdigest(), r["id"]))


def _read_member(path: Path, sample_id: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"sample {sample_id}: {path} is missing from the export") from None


def _write_shard(folder: Path, out: Path, name: str, rows: Sequence[dict[str, str]]) -> None:
    with tarfile.open(out / name, "w", format=tarfile.PAX_FORMAT) as tar:
        for row in rows:
            cls, sample_id = SceneClass.parse(row["class"]), row["id"]
            key = sample_key(sample_id)
            payloads = {
                IMAGE_EXT: _read_member(folder / image_relpath(cls, sample_id), sample_id),
                JSON_EXT: sample_json_bytes(row),
                SOUND_EXT: _read_member(folder / sound_relpath(cls, sample_id), sample_id),
            }
            for ext in SAMPLE_EXTS:
                data = payloads[ext]
                tar.addfile(_member(f"{key}.{ext}", len(data)), io.BytesIO(data))


def _side_files(folder: Path) -> list[str]:
    """Every file of the folder export but its media and manifest, as relative paths, sorted."""
    skip = {VISION_DIR, SOUND_DIR, MANIFEST_FILE}
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).parts[0] not in skip
    )


def _rows_by_split(folder: Path) -> dict[str, list[dict[str, str]]]:
    by_split: dict[str, list[dict[str, str]]] = {s: [] for s in SPLITS}
    for line, row in enumerate(read_metadata(folder), start=2):
        split = (row.get("split") or "").strip()
        if split not in by_split:
            raise DatasetError(f"metadata.csv line {line} (id {row.get('id')}): split {split!r} is not train/val/test")
        by_split[split].append(row)
    return by_split


def shard_manifest_bytes(source: Mapping[str, Any], report: ShardReport, files: Mapping[str, str]) -> bytes:
    """The shard export's manifest.json: the folder export's, with the format, shard counts and shard hashes."""
    rows_class = source.get("counts", {}).get("per_class", {})
    document = {
        "tool_version": source.get("tool_version", ""),
        "parameters": {**source.get("parameters", {}), "format": SHARD_FORMAT, "shard_size": report.shard_size},
        "counts": {
            "per_class": dict(rows_class),
            "per_split": report.per_split(),
            "per_shard": {i.name: i.samples for i in report.shards},
        },
        "files": dict(sorted(files.items())),
    }
    if isinstance(source.get("split"), dict):  # how the split was drawn and its leakage, whatever the format
        document["split"] = source["split"]
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def pack_export(
    folder: Path,
    out: Path,
    *,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: Callable[[int], object] | None = None,
) -> ShardReport:
    """Write the folder export at `folder` as WebDataset shards in `out` (one set of shards per split).

    Args:
        folder: a finished ``annotator export`` folder (metadata.csv with the split, manifest.json, the media).
        out: the shard folder to create; it must not exist or be empty. Written beside it under a temporary
            name and renamed when complete.
        shard_size: samples per shard (the last shard of a split holds the rest).
        progress: called with the number of samples just written.

    Returns:
        The shards written, with their sample counts and sha256.

    Raises:
        DatasetError: `folder` is no export, a listed file is missing, `out` is not empty, a bad `shard_size`.
    """
    if shard_size < 1:
        raise DatasetError(f"--shard-size must be at least 1, not {shard_size}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out} exists and is not an empty folder; choose another output for the shards")
    source = read_manifest(folder)
    by_split = _rows_by_split(folder)
    tmp = out.parent / f".{out.name}.shards-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        report = ShardReport(out, shard_size)
        files: dict[str, str] = {}
        for split in SPLITS:
            rows = _order_in_split(by_split[split])
            for number, start in enumerate(range(0, len(rows), shard_size)):
                chunk, name = rows[start : start + shard_size], shard_name(split, number)
                _write_shard(folder, tmp, name, chunk)
                files[name] = sha256_file(tmp / name)
                report.shards.append(ShardInfo(name, split, len(chunk), (tmp / name).stat().st_size, files[name]))
                if progress is not None:
                    progress(len(chunk))
        for relpath in _side_files(folder):
            (tmp / relpath).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / relpath, tmp / relpath)
            files[relpath] = sha256_file(tmp / relpath)
            report.side_files.append(relpath)
        (tmp / MANIFEST_FILE).write_bytes(shard_manifest_bytes(source, report, files))
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


# ------------------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class ShardSample:
    """One sample read from a shard: its id, the three members' bytes, and the parsed json."""

    id: str
    image: bytes
    sound: bytes
    meta: dict[str, Any]

    @property
    def cls(self) -> SceneClass:
        return SceneClass.parse(self.meta["class"])

    @property
    def split(self) -> str:
        return str(self.meta["split"])


def iter_shard(stream: IO[bytes], where: str) -> Iterator[ShardSample]:
    """The samples of one tar shard read as a stream (no seeking: works on an HTTP response).

    Raises:
        DatasetError: not a tar, a sample lacking a member, a json that is not ours (`where` names the shard).
    """
    current: str | None = None
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                base = info.name.rsplit("/", 1)[-1]
                key, _, ext = base.partition(".")
                if key != current:
                    if current is not None:
                        yield _sample(current, members, where)
                    current, members = key, {}
                handle = tar.extractfile(info)
                assert handle is not None  # a regular file
                members[ext] = handle.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DatasetError(f"{where} cannot be read as a tar shard: {exc}") from None
    if current is not None:
        yield _sample(current, members, where)


def _sample(key: str, members: Mapping[str, bytes], where: str) -> ShardSample:
    missing = [ext for ext in SAMPLE_EXTS if ext not in members]
    if missing:
        raise DatasetError(f"{where}: sample {id_of_key(key)} lacks its .{', .'.join(missing)} member(s)")
    try:
        meta = json.loads(members[JSON_EXT])
        SceneClass.parse(meta["class"])
        if meta["split"] not in SPLITS or meta["id"] != id_of_key(key):
            raise ValueError("split or id does not match")
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{where}: sample {id_of_key(key)} has a bad .json member ({exc})") from None
    return ShardSample(id_of_key(key), members[IMAGE_EXT], members[SOUND_EXT], meta)


def is_shard_manifest(document: Mapping[str, Any]) -> bool:
    """True when a manifest.json document is a shard export's (``parameters.format`` is ``webdataset``)."""
    parameters = document.get("parameters")
    return isinstance(parameters, dict) and parameters.get("format") == SHARD_FORMAT


@dataclass(frozen=True)
class ShardEntry:
    """A shard a manifest lists: name, split, samples and sha256."""

    name: str
    split: str
    samples: int
    sha256: str | None


def manifest_shards(document: Mapping[str, Any]) -> list[ShardEntry]:
    """The shards a shard export's manifest lists, in split then name order.

    Raises:
        DatasetError: the manifest is not a shard export's, or a listed shard's name says no split.
    """
    if not is_shard_manifest(document):
        raise DatasetError("manifest.json is not a shard export's (its parameters.format is not webdataset)")
    per_shard = document.get("counts", {}).get("per_shard", {})
    files = document.get("files", {})
    entries = []
    for name, samples in per_shard.items():
        split = split_of_shard(name)
        if split is None:
            raise DatasetError(f"manifest.json lists a shard {name!r} whose name says no split")
        entries.append(ShardEntry(name, split, int(samples), files.get(name)))
    return sorted(entries, key=lambda e: (SPLITS.index(e.split), e.name))


def check_shards(folder: Path) -> list[str]:
    """Open every shard a shard export's manifest lists and compare it with the manifest (for ``verify``).

    Checks, per shard: it reads as a tar; every sample has its .jpg, .wav and .json; every sample's json names
    the shard's split and a known class; the number of samples equals ``counts.per_shard``; no id appears twice
    in the export; per split, the samples add up to ``counts.per_split``. (The sha256 of every file is checked by
    :func:`dataset.layout.verify_dataset` from the same manifest.)

    Returns:
        One sentence per problem; empty when the shards agree with the manifest.
    """
    document = read_manifest(folder)
    problems: list[str] = []
    seen: dict[str, str] = {}  # id → the shard it was first seen in
    per_split = dict.fromkeys(SPLITS, 0)
    for entry in manifest_shards(document):
        path = folder / entry.name
        if not path.is_file():
            continue  # verify_dataset reports it missing
        count = 0
        try:
            with path.open("rb") as handle:
                for sample in iter_shard(handle, entry.name):
                    count += 1
                    if sample.split != entry.split:
                        problems.append(f"{entry.name}: sample {sample.id} is in split {sample.split}")
                    if sample.id in seen:
                        problems.append(f"sample {sample.id} appears in {seen[sample.id]} and in {entry.name}")
                    seen.setdefault(sample.id, entry.name)
        except DatasetError as exc:
            problems.append(str(exc))
            continue
        per_split[entry.split] += count
        if count != entry.samples:
            problems.append(f"{entry.name} holds {count} samples; the manifest says {entry.samples}")
    expected = document.get("counts", {}).get("per_split", {})
    for split in SPLITS:
        if split in expected and expected[split] != per_split[split] and not problems:
            problems.append(f"the {split} shards hold {per_split[split]} samples; the manifest says {expected[split]}")
    return problems
