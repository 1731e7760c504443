"""Importing geotagged recordings: manifest readers, row checks, the importer and the rejects file (SPEC §5).

:func:`import_recordings` is the whole ``annotator import`` job (import, optional imagery fill, recount);
:func:`import_manifest` is the import alone.
"""

from annotator.ingest.importer import import_manifest
from annotator.ingest.outcome import ImportReport, RowOutcome
from annotator.ingest.rejects import default_rejects_path
from annotator.ingest.workflow import ImportOptions, ImportStage, import_recordings

__all__ = [
    "ImportOptions",
    "ImportReport",
    "ImportStage",
    "RowOutcome",
    "default_rejects_path",
    "import_manifest",
    "import_recordings",
]
