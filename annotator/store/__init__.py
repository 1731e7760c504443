"""The store: SQLAlchemy models, engine and sessions, and the Alembic-owned schema."""

from annotator.store.concurrency import is_write_conflict, job_lock, retry_on_conflict
from annotator.store.engine import (
    UnitOfWork,
    open_store,
    require_current_schema,
    session_scope,
    unit_of_work,
    upgrade_to_head,
)
from annotator.store.models import (
    Base,
    ExportRecord,
    ImportReject,
    LabelStudioProject,
    LabelStudioPull,
    LabelStudioTask,
    OsmEvidence,
    OsmResponse,
    Pair,
    RankRun,
    RankScore,
    Recording,
    Review,
    TrainingRun,
)

__all__ = [
    "Base",
    "ExportRecord",
    "ImportReject",
    "LabelStudioProject",
    "LabelStudioPull",
    "LabelStudioTask",
    "OsmEvidence",
    "OsmResponse",
    "Pair",
    "RankRun",
    "RankScore",
    "Recording",
    "Review",
    "TrainingRun",
    "UnitOfWork",
    "is_write_conflict",
    "job_lock",
    "open_store",
    "require_current_schema",
    "retry_on_conflict",
    "session_scope",
    "unit_of_work",
    "upgrade_to_head",
]
