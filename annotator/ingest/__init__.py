"""Importing geotagged recordings: manifest readers, row checks, the importer and the rejects file (SPEC §5)."""

from annotator.ingest.importer import ImportReport, import_manifest
from annotator.ingest.rejects import default_rejects_path

__all__ = ["ImportReport", "default_rejects_path", "import_manifest"]
