"""What making offset pairs did: made, reused, not made (and why), made from a stand-in (and why)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum


class OffsetProblem(StrEnum):
    """Why an original got fewer than four offset samples in the export."""

    NO_IMAGERY_SOURCE = "no_imagery_source"
    IMAGERY_SOURCE_UNUSABLE = "imagery_source_unusable"
    OFFSET_IMAGERY_FAILED = "offset_imagery_failed"
    CLIP_UNREADABLE = "clip_unreadable"
    OFFSET_UNUSABLE = "offset_unusable"
    OFFSET_RELABELLED = "offset_relabelled"


class OffsetNote(StrEnum):
    """Why offsets were made from a stand-in: the pair's stored 10 s clip, looped, instead of the recording."""

    ORIGINAL_AUDIO_MISSING = "original_audio_missing"
    ORIGINAL_AUDIO_CHANGED = "original_audio_changed"
    ORIGINAL_AUDIO_UNREADABLE = "original_audio_unreadable"


#: The sentence the export summary prints for each offset problem.
OFFSET_PROBLEMS: dict[str, str] = {
    OffsetProblem.NO_IMAGERY_SOURCE: "its image came from the manifest and no --imagery SOURCE was given",
    OffsetProblem.IMAGERY_SOURCE_UNUSABLE: "its recorded imagery source cannot be opened (pass --imagery SOURCE)",
    OffsetProblem.OFFSET_IMAGERY_FAILED: "the imagery source has no image at an offset point",
    OffsetProblem.CLIP_UNREADABLE: "neither the original recording nor the pair's stored clip can be decoded",
    OffsetProblem.OFFSET_UNUSABLE: "a reviewer marked the offset pair unusable",
    OffsetProblem.OFFSET_RELABELLED: "a reviewer gave the offset pair another class than its original",
}
#: The sentence the export summary prints for each offset note.
OFFSET_NOTES: dict[str, str] = {
    OffsetNote.ORIGINAL_AUDIO_MISSING: "original recording not found, offset clips cut from the stored clip "
    "(pass --audio-root DIR, the folder the import manifest's audio paths are relative to)",
    OffsetNote.ORIGINAL_AUDIO_CHANGED: "original recording changed since import (sha256 differs), offset clips cut "
    "from the stored clip",
    OffsetNote.ORIGINAL_AUDIO_UNREADABLE: "original recording cannot be decoded, offset clips cut from the stored clip",
}


@dataclass
class OffsetReport:
    """What making offsets did: offsets made now, reused from earlier runs, and problems and notes per reason."""

    created: int = 0
    reused: int = 0
    problems: Counter[OffsetProblem] = field(default_factory=Counter)
    notes: Counter[OffsetNote] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def merge(self, other: OffsetReport) -> None:
        """Add the counts of `other` (one batch's report) to this one."""
        self.created += other.created
        self.reused += other.reused
        self.problems.update(other.problems)
        self.notes.update(other.notes)
        for reason, detail in other.examples.items():
            self.examples.setdefault(reason, detail)

    def problem(self, reason: OffsetProblem, detail: str, n: int = 1) -> None:
        """Count offsets not made for `reason` (`detail` names the first case)."""
        self.problems[reason] += n
        self.examples.setdefault(reason, detail)

    def note(self, reason: OffsetNote, detail: str, n: int = 1) -> None:
        """Count offsets made with a stand-in for `reason` (`detail` names the first case)."""
        self.notes[reason] += n
        self.examples.setdefault(reason, detail)
