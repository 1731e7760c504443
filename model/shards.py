"""Training data from WebDataset shards (``annotator export --format webdataset``): local or over HTTP.

DATASET may be a shard folder (its ``manifest.json`` says ``parameters.format: webdataset``), the URL of one
(``http://host/shards/``), or a brace pattern of shard paths or URLs (``…/train-{000000..000009}.tar``). A shard's
split is its name's prefix (``train-``, ``val-``, ``test-``). A pattern names the shards to read; for a split
it names no shard of, the shards the ``manifest.json`` beside them lists are added when there is one, so the
pattern of the training shards alone is enough. Shards the manifest lists are checked against its sha256 and
sample counts as they stream.

Under torchrun, each process reads only its part (decided here, deterministically, from rank and world size;
torchrun numbers ranks node by node, so this splits by node and then by local rank):

* a split with at least as many shards as processes is split **by shard**: rank r reads shards r, r+W, r+2W, …
  (the training split normally; re-export with a smaller ``--shard-size`` to get there);
* a split with fewer shards than processes is split **by sample**: every rank reads all of its shards and keeps
  the samples at positions r, r+W, … of the split's stream (small val and test splits, tiny exports).

Either way no sample goes to two ranks and every sample goes to one. The samples a rank keeps are written to a
staging folder in the export layout (``vision/<class>/<id>.jpg``, ``sound/<class>/<id>.wav``) and indexed as a
:class:`model.data.DatasetIndex`, so the feature cache, the resident path and the training loop are the folder
path's own; the staging files are removed once the features are cached (or at the end with ``--no-cache``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch

from annotator.errors import DatasetError
from annotator.files import pid_alive
from annotator.vocabulary import CLASS_ORDER
from dataset.layout import MANIFEST_FILE, image_relpath, sound_relpath
from dataset.shards import SPLITS, ShardSample, is_shard_manifest, iter_shard, manifest_shards, split_of_shard
from dataset.split import Split
from model.data import DatasetIndex, DatasetLayout, SampleRef, SceneDataset
from model.distributed import DistContext, all_reduce_sum
from model.features import N_MELS

#: Seconds an HTTP request for a shard or manifest may stall before the run fails with a sentence.
HTTP_TIMEOUT_S = 60.0
#: Shards read at the same time by one process (I/O bound: network or disk).
PARALLEL_SHARDS = 4
_CHUNK = 1 << 20


def _is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def is_shard_dataset(spec: str | Path) -> bool:
    """True when DATASET names shards: a URL, a brace pattern or ``.tar`` path, or a local shard folder."""
    text = str(spec)
    if _is_url(text) or text.endswith(".tar") or ("{" in text and ".." in text):
        return True
    manifest = Path(text) / MANIFEST_FILE
    if not manifest.is_file():
        return False
    try:
        return is_shard_manifest(json.loads(manifest.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError):
        return False


# ------------------------------------------------------------------------------------------ locating shards


@dataclass(frozen=True)
class Shard:
    """One shard to read: where (a local path or an http(s) URL), its split and what the manifest says of it."""

    url: str
    name: str
    split: str
    samples: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class ShardSet:
    """Every shard of a DATASET, in split then name order, and a key naming their content."""

    spec: str
    shards: tuple[Shard, ...]

    def of_split(self, split: str) -> list[Shard]:
        return [s for s in self.shards if s.split == split]

    @property
    def key(self) -> str:
        """Changes when the shards do (their sha256 when a manifest gives them, else their locations)."""
        digest = hashlib.sha256(b"shards\n")
        for shard in self.shards:
            digest.update(f"{shard.split}\0{shard.name}\0{shard.sha256 or shard.url}\n".encode())
        return digest.hexdigest()


def _open(url: str) -> IO[bytes]:
    """A byte stream of a local file or an http(s) URL; a DatasetError naming it when it cannot be opened."""
    if not _is_url(url):
        try:
            return open(url, "rb")  # noqa: SIM115 - the caller closes it
        except OSError as exc:
            raise DatasetError(f"cannot read shard {url}: {exc.strerror or exc}") from None
    try:
        response: IO[bytes] = urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S)  # noqa: S310 - http(s) only
    except urllib.error.HTTPError as exc:
        raise DatasetError(f"cannot read {url}: the server answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DatasetError(f"cannot read {url}: {reason}") from None
    return response


def _read_manifest_at(folder: str, required: bool) -> dict[str, Any] | None:
    """The manifest.json in a local folder or at a folder URL; None when absent and not `required`."""
    url = f"{folder.rstrip('/')}/{MANIFEST_FILE}"
    if not _is_url(folder) and not Path(url).is_file():
        if required:
            raise DatasetError(f"no {MANIFEST_FILE} in {folder}; is it a shard export (export --format webdataset)?")
        return None
    try:
        with _open(url) as handle:
            document = json.loads(handle.read().decode("utf-8"))
    except DatasetError:
        if required:
            raise
        return None
    except (UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{url} cannot be read as JSON: {exc}") from None
    if not isinstance(document, dict) or not is_shard_manifest(document):
        if required:
            raise DatasetError(f"{url} is not a shard export's manifest (its parameters.format is not webdataset)")
        return None
    return document


def _expand(pattern: str) -> list[str]:
    import braceexpand

    try:
        return list(braceexpand.braceexpand(pattern))
    except ValueError as exc:  # braceexpand.UnbalancedBracesError among them
        raise DatasetError(f"cannot expand the shard pattern {pattern!r}: {exc}") from None


def resolve_shards(spec: str | Path) -> ShardSet:
    """The shards DATASET names (see the module docstring for the forms it takes).

    Raises:
        DatasetError: no manifest in a shard folder, a shard whose name says no split, a pattern naming nothing.
    """
    text = str(spec)
    if not text.endswith(".tar") and "{" not in text:  # a folder, local or by URL
        document = _read_manifest_at(text, required=True)
        assert document is not None
        base = text.rstrip("/")
        shards = [Shard(f"{base}/{e.name}", e.name, e.split, e.samples, e.sha256) for e in manifest_shards(document)]
        return _shard_set(text, shards)
    urls = _expand(text)
    folder = urls[0].rsplit("/", 1)[0] if "/" in urls[0] else "."
    document = _read_manifest_at(folder, required=False)
    listed = {e.name: e for e in manifest_shards(document)} if document is not None else {}
    shards = []
    for url in urls:
        name = url.rsplit("/", 1)[-1]
        split = split_of_shard(name)
        if split is None:
            raise DatasetError(
                f"cannot tell the split of shard {url}: shard names start with train-, val- or test- "
                "(as export --format webdataset writes them)"
            )
        entry = listed.get(name)
        shards.append(Shard(url, name, split, entry.samples if entry else None, entry.sha256 if entry else None))
    named = {s.split for s in shards}
    for entry in listed.values():
        if entry.split not in named:
            shards.append(Shard(f"{folder}/{entry.name}", entry.name, entry.split, entry.samples, entry.sha256))
    return _shard_set(text, shards)


def _shard_set(spec: str, shards: Sequence[Shard]) -> ShardSet:
    ordered = sorted(shards, key=lambda s: (SPLITS.index(s.split), s.name))
    names = [s.name for s in ordered]
    if len(set(names)) != len(names):
        raise DatasetError(f"{spec} names the same shard twice")
    if not any(s.split == Split.TRAIN for s in ordered):
        raise DatasetError(f"{spec} names no training shard (train-NNNNNN.tar)")
    return ShardSet(spec, tuple(ordered))


# ------------------------------------------------------------------------------------------ this rank's part


@dataclass(frozen=True)
class SplitPlan:
    """What one rank reads of one split: the shards, and which samples of their stream it keeps."""

    split: str
    shards: tuple[Shard, ...]
    by: str  # "shard" or "sample"
    every: int = 1  # keep stream positions offset, offset + every, …
    offset: int = 0

    def describe(self) -> dict[str, Any]:
        return {"by": self.by, "shards": [s.name for s in self.shards], "every": self.every, "offset": self.offset}


def plan_rank(shard_set: ShardSet, rank: int, world_size: int) -> dict[str, SplitPlan]:
    """Rank `rank`'s part of every split: by shard when the split has ≥ `world_size` shards, else by sample."""
    plans = {}
    for split in SPLITS:
        shards = shard_set.of_split(split)
        if len(shards) >= world_size:
            plans[split] = SplitPlan(split, tuple(shards[rank::world_size]), "shard")
        else:
            plans[split] = SplitPlan(split, tuple(shards), "sample", world_size, rank)
    return plans


class _HashingReader:
    """A read-only stream that hashes what passes through it (the shard is checked as it streams)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.digest, self.size = raw, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read (and hash) whatever the tar reader left: the end-of-archive padding."""
        while self.read(_CHUNK):
            pass


def _stream_shard(shard: Shard, keep: Callable[[int], bool], on_sample: Callable[[ShardSample], None]) -> int:
    """Read one shard, giving each sample whose position in it `keep` accepts to `on_sample`; returns its count.

    Raises:
        DatasetError: unreadable, a sample of another split, or a sha256 / sample count differing from the manifest.
    """
    with _open(shard.url) as raw:
        reader = _HashingReader(raw)
        count = 0
        for sample in iter_shard(reader, shard.url):  # type: ignore[arg-type]  # a read()-only stream suffices
            if sample.split != shard.split:
                raise DatasetError(f"{shard.url}: sample {sample.id} is in split {sample.split}, not {shard.split}")
            if keep(count):
                on_sample(sample)
            count += 1
        reader.drain()
    if shard.sha256 is not None and reader.digest.hexdigest() != shard.sha256:
        raise DatasetError(
            f"{shard.url} differs from the manifest (sha256 {reader.digest.hexdigest()[:12]}…, expected "
            f"{shard.sha256[:12]}…); the shard is damaged or from another export"
        )
    if shard.samples is not None and count != shard.samples:
        raise DatasetError(f"{shard.url} holds {count} samples; the manifest says {shard.samples}")
    return count


@dataclass
class RankData:
    """This rank's samples, staged in the export layout, and what it read to get them."""

    index: DatasetIndex
    staging: Path
    plans: dict[str, SplitPlan]
    shard_set: ShardSet
    bytes_read: int = 0
    read_counts: dict[str, int] = field(default_factory=dict)  # samples seen per split (before keeping)

    def remove_staging(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _stage(sample: ShardSample, staging: Path) -> SampleRef:
    cls = sample.cls
    image, audio = staging / image_relpath(cls, sample.id), staging / sound_relpath(cls, sample.id)
    image.parent.mkdir(parents=True, exist_ok=True)
    audio.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(sample.image)
    audio.write_bytes(sample.sound)
    return SampleRef(sample.id, cls, Split(sample.split), image, audio)


def _read_plan(plan: SplitPlan, staging: Path) -> tuple[list[SampleRef], int]:
    """Stage the samples `plan` keeps; returns them and how many samples its shards hold."""
    if plan.by == "shard":
        kept: list[list[SampleRef]] = [[] for _ in plan.shards]

        def read_whole(i: int) -> int:
            return _stream_shard(plan.shards[i], lambda _: True, lambda s: kept[i].append(_stage(s, staging)))

        with ThreadPoolExecutor(max_workers=PARALLEL_SHARDS) as pool:
            counts = list(pool.map(read_whole, range(len(plan.shards))))
        return [ref for refs in kept for ref in refs], sum(counts)
    # By sample: positions count across the split's shards in order, so the shards are read one after another.
    refs: list[SampleRef] = []
    seen = 0
    for shard in plan.shards:
        start = seen
        seen += _stream_shard(
            shard,
            lambda k, start=start: (start + k) % plan.every == plan.offset,  # type: ignore[misc]
            lambda s: refs.append(_stage(s, staging)),
        )
    return refs, seen


def staging_folder(cache_root: Path, rank: int) -> Path:
    """Where a process stages its samples: unique per host, process and rank, under the cache root.

    Folders that killed runs on this host left there (their process is gone) are removed first.
    """
    parent = Path(cache_root) / "shard-staging"
    host = socket.gethostname()
    if parent.is_dir():
        for folder in parent.glob(f"{host}-*-rank*"):
            pid = folder.name[len(host) + 1 :].split("-", 1)[0]
            if pid.isdigit() and not pid_alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)
    return parent / f"{host}-{os.getpid()}-rank{rank}"


def open_shards(spec: str | Path, staging: Path, *, rank: int = 0, world_size: int = 1) -> RankData:
    """Read this rank's part of the shards DATASET names into `staging` and index it.

    Args:
        spec: the DATASET string (a shard folder, its URL, or a brace pattern of shard paths or URLs).
        staging: an empty or absent folder for the staged files (removed again by :meth:`RankData.remove_staging`).
        rank: this process's rank; world_size: the number of processes (see the module docstring for the split).

    Returns:
        The rank's samples, sorted by id, as an index whose key names exactly these samples.

    Raises:
        DatasetError: a shard cannot be read or disagrees with the manifest, an id appears twice, nothing to read.
    """
    shard_set = resolve_shards(spec)
    plans = plan_rank(shard_set, rank, world_size)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        samples: list[SampleRef] = []
        counts: dict[str, int] = {}
        for split in SPLITS:
            refs, counts[split] = _read_plan(plans[split], staging)
            samples.extend(refs)
        ids = [s.id for s in samples]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise DatasetError(f"sample {twice[0]} appears in more than one shard of {spec}")
        samples.sort(key=lambda s: s.id)
        digest = hashlib.sha256(f"{shard_set.key}\n".encode())
        for plan in plans.values():
            digest.update(json.dumps(plan.describe(), sort_keys=True).encode())
        index = DatasetIndex(root=staging, layout=DatasetLayout.SHARDS, samples=tuple(samples), key=digest.hexdigest())
        size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
        return RankData(index, staging, plans, shard_set, size, counts)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# ------------------------------------------------------------------------------------------ across ranks


def gather_counts(data: RankData, ctx: DistContext) -> list[dict[str, int]]:
    """Samples per split held by each rank (all-gathered; every rank gets the same list)."""
    local = [sum(1 for s in data.index.samples if s.split == split) for split in Split]
    if not ctx.distributed:
        return [dict(zip([s.value for s in Split], local, strict=True))]
    import torch.distributed as dist

    tensor = torch.tensor(local, dtype=torch.int64)
    gathered = [torch.zeros_like(tensor) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, tensor)
    return [dict(zip([s.value for s in Split], t.tolist(), strict=True)) for t in gathered]


def gather_class_counts(data: RankData, ctx: DistContext) -> dict[str, int]:
    """Samples per class over every rank."""
    local = torch.tensor([sum(1 for s in data.index.samples if s.label == c) for c in CLASS_ORDER], dtype=torch.int64)
    if ctx.distributed:
        import torch.distributed as dist

        dist.all_reduce(local, op=dist.ReduceOp.SUM)
    return {c.value: int(n) for c, n in zip(CLASS_ORDER, local.tolist(), strict=True)}


def describe_shards(data: RankData, per_rank: Sequence[Mapping[str, int]], per_class: Mapping[str, int]) -> dict:
    """The dataset entry of metrics.json and the checkpoint for a run on shards."""
    per_split = {s: sum(r[s] for r in per_rank) for s in SPLITS}
    return {
        "layout": DatasetLayout.SHARDS.value,
        "key": data.shard_set.key,
        "per_split": per_split,
        "per_class": dict(per_class),
        "shards": {s: len(data.shard_set.of_split(s)) for s in SPLITS},
        "split_by": {s: p.by for s, p in data.plans.items()},
        "per_rank": [dict(r) for r in per_rank],
    }


def audio_statistics_across_ranks(
    dataset: SceneDataset, workers: int, ctx: DistContext
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-mel-bin mean and std (64,) of the training log-mels when every rank holds a part of the split.

    :func:`model.steps.audio_statistics` over the union: float64 sums and counts are added up over the ranks,
    so every rank normalises with the same statistics.
    """
    from torch.utils.data import DataLoader

    only_audio = SceneDataset(dataset.samples, image_size=dataset.image_size, image=False, cache=dataset.cache)
    sums = torch.zeros(2 * N_MELS + 1, dtype=torch.float64)  # Σx per bin, Σx² per bin, count
    for batch in DataLoader(only_audio, batch_size=32, num_workers=workers):
        mel = batch["audio"].double()[:, 0]  # (B, 64, 400)
        sums[:N_MELS] += mel.sum(dim=(0, 2))
        sums[N_MELS:-1] += mel.square().sum(dim=(0, 2))
        sums[-1] += mel.shape[0] * mel.shape[2]
    all_reduce_sum(sums, ctx)
    mean = sums[:N_MELS] / sums[-1]
    std = (sums[N_MELS:-1] / sums[-1] - mean.square()).clamp_min(0).sqrt()
    return mean.float(), std.float()
