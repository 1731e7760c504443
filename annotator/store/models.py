"""SQLAlchemy 2 typed models of the store (SPEC §4).

Alembic owns the schema: every change here needs a revision under ``alembic/versions`` (a test compares the two).
Paths of media files are stored relative to the media directory; timestamps are stored as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy import (
    true as sa_true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from annotator.vocabulary import (
    FinalReason,
    ImageStatus,
    LabelSource,
    OffsetDirection,
    PairOrigin,
    ProjectPurpose,
    PullMode,
    RecordingSource,
    RecordingStatus,
    RejectReason,
    ReviewOutcome,
    TaskKind,
)

# Named constraints: SQLite batch migrations can only drop or alter a constraint that has a name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, whatever the backend does with time zones."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


E = TypeVar("E", bound=StrEnum)


class EnumText(TypeDecorator[E]):
    """A lifecycle column: stored as the enum's plain string value (as before the enums existed), read as the enum.

    The column type is a plain ``String(length)``, so the schema (and every stored value) is unchanged; only the
    Python side is typed. A value outside the enum on disk raises on load instead of passing silently.
    """

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Any) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Any) -> E | None:
        return None if value is None else self.enum(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


# ------------------------------------------------------------------------------------------ revision 0001


class Recording(Base):
    """One geotagged recording as imported from a manifest."""

    __tablename__ = "recordings"
    __table_args__ = (UniqueConstraint("source", "source_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[RecordingSource] = mapped_column(EnumText(RecordingSource, 32))
    source_id: Mapped[str] = mapped_column(String(128))  # the manifest's recording_id / Freesound id
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    original_path: Mapped[str] = mapped_column(Text)  # as the manifest names it (relative to its root)
    sha256: Mapped[str] = mapped_column(String(64))
    file_format: Mapped[str | None] = mapped_column(String(32))
    sample_rate: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    frames: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float)
    looped: Mapped[bool] = mapped_column(Boolean, default=False)
    license: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(Text)
    source_url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[RecordingStatus] = mapped_column(EnumText(RecordingStatus, 16))
    reject_reason: Mapped[RejectReason | None] = mapped_column(EnumText(RejectReason, 64))
    manifest: Mapped[str | None] = mapped_column(Text)  # manifest file name it came from
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)

    pairs: Mapped[list[Pair]] = relationship(back_populates="recording", cascade="all, delete-orphan")


class Pair(Base):
    """An aerial image + 10 s clip at one location: the unit that is labelled, reviewed and exported."""

    __tablename__ = "pairs"
    __table_args__ = (UniqueConstraint("parent_pair_id", "direction", "offset_m"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), index=True)
    origin: Mapped[PairOrigin] = mapped_column(EnumText(PairOrigin, 16), default=PairOrigin.ORIGINAL)
    parent_pair_id: Mapped[int | None] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"))
    direction: Mapped[OffsetDirection | None] = mapped_column(EnumText(OffsetDirection, 1))  # offset pairs only
    offset_m: Mapped[float | None] = mapped_column(Float)
    offset_index: Mapped[int | None] = mapped_column(Integer)  # k of the export id <recording>_<k>
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    clip_path: Mapped[str | None] = mapped_column(Text)  # relative to the media directory
    clip_start_s: Mapped[float | None] = mapped_column(Float)
    clip_seed: Mapped[int | None] = mapped_column(Integer)
    clip_sample_rate: Mapped[int | None] = mapped_column(Integer)
    image_path: Mapped[str | None] = mapped_column(Text)  # relative to the media directory
    image_status: Mapped[ImageStatus] = mapped_column(EnumText(ImageStatus, 16), default=ImageStatus.NEEDS_IMAGERY)
    image_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # revision 0002: where the image came from and the ground it covers
    image_source: Mapped[str | None] = mapped_column(Text)  # IMAGE_SOURCE_MANIFEST or the imagery SOURCE string
    image_zoom: Mapped[int | None] = mapped_column(Integer)
    image_resolution_m: Mapped[float | None] = mapped_column(Float)
    footprint_west: Mapped[float | None] = mapped_column(Float)
    footprint_south: Mapped[float | None] = mapped_column(Float)
    footprint_east: Mapped[float | None] = mapped_column(Float)
    footprint_north: Mapped[float | None] = mapped_column(Float)
    image_acquired: Mapped[str | None] = mapped_column(String(32))  # the imagery's acquisition date, when it says
    # revision 0004: the final label and why (SPEC §4, §7)
    final_label: Mapped[str | None] = mapped_column(String(32))  # a SceneClass value or Verdict.UNUSABLE
    final_reason: Mapped[FinalReason | None] = mapped_column(EnumText(FinalReason, 16))
    final_updated_at: Mapped[datetime | None] = mapped_column()

    recording: Mapped[Recording] = relationship(back_populates="pairs")
    parent: Mapped[Pair | None] = relationship(remote_side=[id])
    osm_evidence: Mapped[OsmEvidence | None] = relationship(back_populates="pair", cascade="all, delete-orphan")

    @property
    def footprint(self) -> tuple[float, float, float, float] | None:
        """(west, south, east, north) in degrees, or None when the image has no known footprint."""
        values = (self.footprint_west, self.footprint_south, self.footprint_east, self.footprint_north)
        return None if any(v is None for v in values) else values  # type: ignore[return-value]


class ImportReject(Base):
    """A manifest row that could not be imported, with its reason (kept so `status` can count them)."""

    __tablename__ = "import_rejects"
    __table_args__ = (UniqueConstraint("manifest", "line", "reason"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    manifest: Mapped[str] = mapped_column(Text)
    line: Mapped[int] = mapped_column(Integer)  # 1-based row number in the manifest (header excluded)
    recording_ref: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[RejectReason] = mapped_column(EnumText(RejectReason, 64))
    detail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# ------------------------------------------------------------------------------------------ revision 0003


class OsmEvidence(Base):
    """Why OSM suggests a class for a pair (SPEC §6): the decision, coverage and deciding elements."""

    __tablename__ = "osm_evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"), unique=True)
    label: Mapped[str | None] = mapped_column(String(32))  # SceneClass value, None when nothing matched
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    coverage: Mapped[dict[str, Any]] = mapped_column(default=dict)  # class -> fraction of the footprint
    elements: Mapped[list[Any]] = mapped_column(default=list)  # [{type, id, version, timestamp, tags, class}]
    last_edit_at: Mapped[datetime | None] = mapped_column()  # last edit of the deciding element
    source: Mapped[str] = mapped_column(Text)  # Overpass endpoint URL or extract file name
    source_date: Mapped[str | None] = mapped_column(String(64))  # extract timestamp / Overpass osm_base
    queried_at: Mapped[datetime] = mapped_column(default=utcnow)

    pair: Mapped[Pair] = relationship(back_populates="osm_evidence")


class OsmResponse(Base):
    """Raw Overpass responses, cached by query so a rerun asks nothing twice."""

    __tablename__ = "osm_responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    query_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    endpoint: Mapped[str] = mapped_column(Text)
    query: Mapped[str] = mapped_column(Text)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)


# ------------------------------------------------------------------------------------------ revision 0004


class LabelStudioProject(Base):
    """A Label Studio project the store pushes to (the review project, or one for adjudication)."""

    __tablename__ = "ls_projects"
    __table_args__ = (UniqueConstraint("base_url", "ls_project_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    base_url: Mapped[str] = mapped_column(Text)  # never holds credentials
    ls_project_id: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    purpose: Mapped[ProjectPurpose] = mapped_column(EnumText(ProjectPurpose, 16), default=ProjectPurpose.REVIEW)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LabelStudioTask(Base):
    """The Label Studio task of a pair in a project; stored as soon as its batch returns (idempotent push)."""

    __tablename__ = "ls_tasks"
    __table_args__ = (
        UniqueConstraint("project_id", "pair_id", "kind"),
        UniqueConstraint("project_id", "ls_task_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("ls_projects.id", ondelete="CASCADE"), index=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"), index=True)
    ls_task_id: Mapped[int] = mapped_column(Integer)
    pushed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # revision 0007 (issue 14): a control item is a second task of a settled pair in the same project.
    kind: Mapped[TaskKind] = mapped_column(EnumText(TaskKind, 16), default=TaskKind.REVIEW, server_default="review")
    # False: pushed blind, without the pre-selected suggestion (`ls push --blind-fraction`), for the anchoring figure.
    preselected: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())
    # Annotations Label Studio collects for the task (`ls push --overlap N`); None: the project's default.
    overlap: Mapped[int | None] = mapped_column(Integer)


class LabelStudioPull(Base):
    """One pull from Label Studio: its mode and the checkpoint the next incremental pull starts from."""

    __tablename__ = "ls_pulls"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("ls_projects.id", ondelete="CASCADE"), index=True)
    mode: Mapped[PullMode] = mapped_column(EnumText(PullMode, 16))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    checkpoint: Mapped[str | None] = mapped_column(String(40))  # max task updated_at seen, LS filter format
    tasks_seen: Mapped[int] = mapped_column(Integer, default=0)
    reviews_added: Mapped[int] = mapped_column(Integer, default=0)
    reviews_retracted: Mapped[int] = mapped_column(Integer, default=0)


class Review(Base):
    """One verdict as pulled from Label Studio. History: an updated annotation adds a row."""

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("ls_annotation_id", "ls_updated_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("ls_projects.id", ondelete="SET NULL"))
    ls_task_id: Mapped[int] = mapped_column(Integer)
    ls_annotation_id: Mapped[int] = mapped_column(Integer, index=True)
    annotator: Mapped[str] = mapped_column(Text)  # LS user email, or "user:<id>"
    verdict: Mapped[str] = mapped_column(String(32))  # a SceneClass or Verdict value
    outcome: Mapped[ReviewOutcome] = mapped_column(EnumText(ReviewOutcome, 16))
    predicted_label: Mapped[str | None] = mapped_column(String(32))  # the OSM class it was compared with
    comment: Mapped[str | None] = mapped_column(Text)
    ls_created_at: Mapped[datetime | None] = mapped_column()
    ls_updated_at: Mapped[datetime | None] = mapped_column()
    pulled_at: Mapped[datetime] = mapped_column(default=utcnow)
    retracted_at: Mapped[datetime | None] = mapped_column()  # the annotation was deleted in Label Studio
    lead_time_s: Mapped[float | None] = mapped_column(Float)  # Label Studio's lead_time: seconds spent on the task


# ------------------------------------------------------------------------------------------ revision 0005


class ExportRecord(Base):
    """One dataset export: parameters, counts, output path and manifest hash."""

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    out_path: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    tool_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainingRun(Base):
    """One training run: dataset, parameters, metrics and checkpoint."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_path: Mapped[str] = mapped_column(Text)
    dataset_manifest_sha256: Mapped[str | None] = mapped_column(String(64))
    run_dir: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    checkpoint_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# ------------------------------------------------------------------------------------------ revision 0006


class RankRun(Base):
    """One `annotator rank` run: its parameters, counts and model summary; its scores are :class:`RankScore`."""

    __tablename__ = "rank_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)  # folds, epochs, preset, seed, osm_weight, …
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # scored, trained on, per label origin, flagged
    model: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the resolved training config, seconds per fold
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    scores: Mapped[list[RankScore]] = relationship(back_populates="run", cascade="all, delete-orphan")


class RankScore(Base):
    """How suspicious one pair's label looked to one rank run (rank 1: the most suspicious)."""

    __tablename__ = "rank_scores"
    __table_args__ = (UniqueConstraint("run_id", "pair_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("rank_runs.id", ondelete="CASCADE"))
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"), index=True)
    current_label: Mapped[str | None] = mapped_column(String(32))  # the label the run judged (a SceneClass value)
    label_origin: Mapped[LabelSource | None] = mapped_column(EnumText(LabelSource, 16))  # None: no label at all
    suggested_label: Mapped[str] = mapped_column(String(32))  # the model's most probable class
    suggested_p: Mapped[float] = mapped_column(Float)  # its out-of-fold probability
    suspicion: Mapped[float] = mapped_column(Float)  # in [0, 1]: how likely the current label is wrong
    fold: Mapped[int] = mapped_column(Integer)  # the cross-validation fold that scored the pair
    rank: Mapped[int] = mapped_column(Integer)  # 1 = most suspicious; ties broken by pair id

    run: Mapped[RankRun] = relationship(back_populates="scores")
