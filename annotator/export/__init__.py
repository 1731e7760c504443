"""Export: the reviewed pairs as a balanced dataset in the ADVANCE layout (SPEC §8), beside import.

The workflow (selection from the store, offset pairs, samples, the run that writes the dataset and records it)
lives here; the pure pieces it uses (the layout, the sample writer, the output folder, clip windows, balancing,
the split and the figures) live in :mod:`dataset`.
"""

from annotator.export.offset_report import OFFSET_NOTES, OFFSET_PROBLEMS, OffsetNote, OffsetProblem, OffsetReport
from annotator.export.options import ExportFormat, ExportOptions, Progress, default_workers
from annotator.export.run import ExportReport, export_dataset
from annotator.export.selection import SKIP_REASONS, SkipReason

__all__ = [
    "OFFSET_NOTES",
    "OFFSET_PROBLEMS",
    "SKIP_REASONS",
    "ExportFormat",
    "ExportOptions",
    "ExportReport",
    "OffsetNote",
    "OffsetProblem",
    "OffsetReport",
    "Progress",
    "SkipReason",
    "default_workers",
    "export_dataset",
]
