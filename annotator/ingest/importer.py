"""Import a manifest of geotagged recordings into the store: one accepted recording → one pair (SPEC §1, §5).

The import streams the manifest row by row and commits every ``batch_size`` rows, so memory stays flat and a
killed import leaves a consistent store: media files are written before the rows that name them are committed
(an interrupted batch leaves at most unreferenced files, overwritten on the rerun), and a rerun skips what is
already there. A recording already in the store is compared by sha256 and coordinates: identical → unchanged;
different → reported (``changed_file`` / ``changed_metadata``), never overwritten. Two imports of one manifest
into one store at once both finish: a batch that collides with the other's commits is rolled back and redone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from annotator.config import StoreLocation
from annotator.errors import BadManifestRow
from annotator.ingest.manifest import ManifestRow, open_manifest
from annotator.ingest.outcome import ImportReport, RowOutcome, RowResult
from annotator.ingest.rejects import RejectsWriter, open_rejects
from annotator.ingest.rows import PreparedRow, RowImporter
from annotator.store.concurrency import retry_on_conflict
from annotator.store.engine import UnitOfWork
from annotator.store.models import ImportReject, Pair
from annotator.vocabulary import ImageStatus, RejectReason

BATCH_SIZE = 200

#: A row on its way through the pipeline: decoding on a worker, or already decided on the main thread.
_Pending = tuple[ManifestRow, Future[PreparedRow] | RowResult]


class ManifestImport:
    """One import of one manifest: the state its steps share, and one method per step.

    Every row goes through :meth:`_triage` (duplicate check, cheap checks and the store lookup, main thread),
    then, when it is a new recording, :class:`RowImporter.prepare` on a worker thread, then :meth:`_finish`
    (store the rows and the reject, main thread); :meth:`_import_batch` commits every ``batch_size`` rows and only
    then counts them and writes their rejects out. Rows are finished strictly in manifest order; only the decoding
    runs ahead, at most ``2 * workers`` rows ahead of the main thread within a batch (libsndfile, hashlib and
    Pillow release the GIL).

    Args:
        work: The caller's unit of work; :meth:`_import_batch` commits it every ``batch_size`` rows.
        rows: Turns one row into store rows and media files.
        rejects: The rejects file being written.
        report: The report the rows are counted in.
        batch_size: Rows per committed batch.
        progress: Called with 1 after each finished row.
    """

    def __init__(
        self,
        work: UnitOfWork,
        rows: RowImporter,
        rejects: RejectsWriter,
        report: ImportReport,
        *,
        batch_size: int = BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.work = work
        self.session: Session = work.session
        self.rows = rows
        self.rejects = rejects
        self.report = report
        self.batch_size = batch_size
        self.progress = progress
        self.manifest_name = report.manifest
        # id -> (fingerprint, line) of every row seen in this manifest: ~100 bytes per row, to spot duplicates.
        self._seen: dict[str, tuple[bytes, int]] = {}
        # (line, reason) of the rejects stored by earlier imports of this manifest; lines a rerun has fixed.
        self._stored_rejects = self._load_stored_rejects()
        self._earlier_lines = {line for line, _ in self._stored_rejects}
        self._cleared_lines: list[int] = []
        # The batch being imported: its attempt, the ids it added to _seen, rows finished (this attempt, any attempt).
        self._attempt = 0
        self._seen_in_batch: list[str] = []
        self._position = 0
        self._advanced = 0

    def run(self, manifest_rows: Iterable[ManifestRow], *, workers: int = 2) -> ImportReport:
        """Import every row, one committed batch at a time, and count the pairs still needing imagery."""
        window = max(1, 2 * workers)
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="import") as pool:
            for batch in batched(manifest_rows, self.batch_size):
                self._import_batch(batch, pool, window)
        self.report.needs_imagery = count_pairs_needing_imagery(self.session)
        return self.report

    def _import_batch(self, batch: tuple[ManifestRow, ...], pool: ThreadPoolExecutor, window: int) -> None:
        """Decide and store one batch and commit it; redo it when another writer stored some of its rows first.

        Two imports of one manifest into one store race for the same recordings: the one that commits second
        hits the unique (source, source_id) of a recording the other stored meanwhile (or, on SQLite, a lock
        held past the busy timeout). :func:`~annotator.store.retry_on_conflict` then rolls the batch back and
        runs it again, and the rows the other process stored are now unchanged. The report and the rejects file
        are written only once the batch is committed; media files a rolled-back attempt wrote are named by pair
        ids that were never committed (overwritten when the id is used, like those of a killed import).
        """
        self._attempt = self._advanced = 0
        results = retry_on_conflict(self.work, lambda _session: self._decide_batch(batch, pool, window))
        self.session.expunge_all()  # forget the batch's objects so memory stays flat
        for row, result in zip(batch, results, strict=True):
            self.report.count(result)
            if result.outcome is RowOutcome.REJECTED:
                assert result.reason is not None
                self.rejects.write(row.line, row.recording_id, result.reason, result.detail)

    def _decide_batch(self, batch: tuple[ManifestRow, ...], pool: ThreadPoolExecutor, window: int) -> list[RowResult]:
        """One attempt at a batch: every row decided and stored in the session, in manifest order (uncommitted)."""
        self._attempt += 1
        if self._attempt > 1:  # the rollback undid the last attempt in the store: undo it here too
            for recording_id in self._seen_in_batch:
                del self._seen[recording_id]
            self._stored_rejects = self._load_stored_rejects()
        self._seen_in_batch = []
        self._cleared_lines.clear()
        self._position = 0
        results: list[RowResult] = []
        pending: deque[_Pending] = deque()
        try:
            for row in batch:
                pending.append((row, self._triage(row, pool)))
                while len(pending) > window:
                    results.append(self._finish(*pending.popleft()))
            while pending:
                results.append(self._finish(*pending.popleft()))
        finally:
            for _, work in pending:  # interrupted: do not decode what will never be stored
                if isinstance(work, Future):
                    work.cancel()
        self._drop_fixed_rejects()
        return results

    def _load_stored_rejects(self) -> set[tuple[int, str]]:
        query = select(ImportReject.line, ImportReject.reason).where(ImportReject.manifest == self.manifest_name)
        return {(line, reason) for line, reason in self.session.execute(query)}

    def _triage(self, row: ManifestRow, pool: ThreadPoolExecutor) -> Future[PreparedRow] | RowResult:
        """Decide the row on the main thread, or hand its decoding to a worker."""
        repeated = self._repeat_of_earlier_row(row)
        if repeated is not None:
            return repeated
        try:
            planned = self.rows.plan(self.session, row)
        except BadManifestRow as exc:
            return RowResult.from_error(exc)
        return planned if isinstance(planned, RowResult) else pool.submit(planned)

    def _repeat_of_earlier_row(self, row: ManifestRow) -> RowResult | None:
        """An identical repeat is skipped; the same id with other data is a ``duplicate_id`` reject."""
        if row.recording_id is None or row.problem is not None:
            return None
        fingerprint = row.fingerprint()
        first = self._seen.get(row.recording_id)
        if first is None:
            self._seen[row.recording_id] = (fingerprint, row.line)
            self._seen_in_batch.append(row.recording_id)
            return None
        if first[0] == fingerprint:
            return RowResult(RowOutcome.DUPLICATE_SKIPPED)
        return RowResult.rejected(
            RejectReason.DUPLICATE_ID, f"{row.recording_id} is already on line {first[1]} with other data"
        )

    def _finish(self, row: ManifestRow, work: Future[PreparedRow] | RowResult) -> RowResult:
        """Store the row (main thread, manifest order) and its reject; advance the progress once per row."""
        result = work if isinstance(work, RowResult) else self._store(work)
        if result.outcome is RowOutcome.REJECTED:
            assert result.reason is not None
            self._store_reject(row, result.reason, result.detail)
        elif result.outcome in (RowOutcome.NEW, RowOutcome.UNCHANGED) and row.line in self._earlier_lines:
            self._cleared_lines.append(row.line)
        self._position += 1
        if self._position > self._advanced:  # a redone batch does not advance the progress twice
            self._advanced = self._position
            if self.progress is not None:
                self.progress(1)
        return result

    def _store(self, prepared: Future[PreparedRow]) -> RowResult:
        try:
            return self.rows.store(self.session, prepared.result())
        except BadManifestRow as exc:
            return RowResult.from_error(exc)

    def _store_reject(self, row: ManifestRow, reason: RejectReason, detail: str) -> None:
        """Keep the reject in the store (once per line and reason, however often the manifest is imported)."""
        if (row.line, reason) in self._stored_rejects:
            return
        self._stored_rejects.add((row.line, reason))
        self.session.add(
            ImportReject(
                manifest=self.manifest_name, line=row.line, recording_ref=row.recording_id, reason=reason, detail=detail
            )
        )

    def _drop_fixed_rejects(self) -> None:
        """Delete the stored rejects of lines this import has now imported (or found unchanged)."""
        if self._cleared_lines:
            self.session.execute(
                delete(ImportReject).where(
                    ImportReject.manifest == self.manifest_name, ImportReject.line.in_(self._cleared_lines)
                )
            )
            self._cleared_lines.clear()


def batched(rows: Iterable[ManifestRow], size: int) -> Iterator[tuple[ManifestRow, ...]]:
    """`rows` in tuples of `size` (the last one shorter), read lazily."""
    iterator = iter(rows)
    while batch := tuple(islice(iterator, size)):
        yield batch


def import_manifest(
    work: UnitOfWork,
    location: StoreLocation,
    manifest_path: Path,
    *,
    rejects_path: Path,
    audio_root: Path | None = None,
    image_root: Path | None = None,
    seed: int = 0,
    batch_size: int = BATCH_SIZE,
    workers: int = 2,
    on_start: Callable[[int | None], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import every row of a manifest; long batch job: ``work.commit_batch()`` every `batch_size` rows.

    Args:
        work: The caller's unit of work on the store (at head); the last batch is committed here too.
        location: Where media files go (``clips/<pair_id>.wav``, ``images/<pair_id>.jpg``).
        manifest_path: CSV, JSON Lines or Freesound search-results JSON.
        rejects_path: The rejects CSV to write (line, recording_id, reason, detail); replaced atomically.
        audio_root: Folder relative audio paths resolve against (default: the manifest's folder).
        image_root: Folder relative image paths resolve against (default: the manifest's folder).
        seed: Seeds every clip window together with the recording id.
        batch_size: Rows per committed batch.
        workers: Threads that probe, hash and decode new recordings ahead of the main thread.
        on_start: Called once with the (approximate) number of rows, before the first row.
        progress: Called with 1 after each row.

    Returns:
        An :class:`ImportReport`; ``needs_imagery`` counts the whole store.

    Raises:
        BadManifest: the manifest as a whole is unusable; nothing is written then.
    """
    manifest_path = Path(manifest_path)
    manifest = open_manifest(manifest_path, audio_root=audio_root)
    base = manifest_path.parent
    rows = RowImporter(location, manifest_path.name, audio_root or base, image_root or base, seed)
    report = ImportReport(manifest=manifest_path.name, format=manifest.format, rejects_path=Path(rejects_path))
    if on_start is not None:
        on_start(manifest.approx_rows)
    with open_rejects(rejects_path) as rejects:
        job = ManifestImport(work, rows, rejects, report, batch_size=batch_size, progress=progress)
        return job.run(manifest.rows(), workers=workers)


def count_pairs_needing_imagery(session: Session) -> int:
    """Pairs in the store whose image is not present yet."""
    query = select(func.count()).select_from(Pair).where(Pair.image_status != ImageStatus.PRESENT)
    return session.scalar(query) or 0
