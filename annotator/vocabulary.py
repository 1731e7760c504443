"""The closed vocabulary of scene classes and review verdicts (SPEC §2).

Every module that names a class uses :class:`SceneClass`: the store, the Label Studio config, the export
folders and the model head. The index order is fixed and equals the published ADVANCE release.
"""

from __future__ import annotations

from enum import StrEnum


class SceneClass(StrEnum):
    """The 13 ADVANCE scene classes; the value is the release's folder name."""

    AIRPORT = "airport"
    BEACH = "beach"
    BRIDGE = "bridge"
    FARMLAND = "farmland"
    FOREST = "forest"
    GRASSLAND = "grassland"
    HARBOUR = "harbour"
    LAKE = "lake"
    ORCHARD = "orchard"
    RESIDENTIAL = "residential"
    SPARSE_SHRUB_LAND = "sparse shrub land"
    SPORTS_LAND = "sports land"
    TRAIN_STATION = "train station"

    @property
    def index(self) -> int:  # type: ignore[override]  # the class's position, not str.index: never a substring
        """Position of the class in the fixed order (0–12), the model's output index."""
        return CLASS_ORDER.index(self)

    @classmethod
    def from_index(cls, index: int) -> SceneClass:
        return CLASS_ORDER[index]

    @classmethod
    def parse(cls, text: str) -> SceneClass:
        """Parse a class name leniently (case, `_`/`-` for spaces); raise ValueError naming the choices."""
        key = " ".join(text.strip().lower().replace("_", " ").replace("-", " ").split())
        for member in cls:
            if member.value == key:
                return member
        raise ValueError(f"unknown scene class {text!r}; expected one of: {', '.join(c.value for c in cls)}")


CLASS_ORDER: tuple[SceneClass, ...] = tuple(SceneClass)
NUM_CLASSES = len(CLASS_ORDER)

#: Published per-class pair counts of ADVANCE (SPEC §2), for realistic generated corpora.
ADVANCE_COUNTS: dict[SceneClass, int] = {
    SceneClass.AIRPORT: 185,
    SceneClass.BEACH: 216,
    SceneClass.BRIDGE: 280,
    SceneClass.FARMLAND: 430,
    SceneClass.FOREST: 862,
    SceneClass.GRASSLAND: 150,
    SceneClass.HARBOUR: 508,
    SceneClass.LAKE: 357,
    SceneClass.ORCHARD: 207,
    SceneClass.RESIDENTIAL: 1056,
    SceneClass.SPARSE_SHRUB_LAND: 405,
    SceneClass.SPORTS_LAND: 159,
    SceneClass.TRAIN_STATION: 260,
}


class Verdict(StrEnum):
    """What a reviewer can say beyond choosing a class."""

    UNUSABLE = "unusable"
    SKIPPED = "skipped"


class FinalReason(StrEnum):
    """Why a pair has the final label it has (SPEC §4)."""

    SINGLE_REVIEW = "single_review"
    MAJORITY = "majority"
    CONFLICT = "conflict"
    OSM_ONLY = "osm_only"


# ------------------------------------------------------------------------------------------ lifecycle values
# Every lifecycle column of the store takes its values from one of these enums. The values are exactly the
# strings earlier versions stored, so no data migration is needed (tests/store/test_vocabulary_compat.py).


class RecordingSource(StrEnum):
    """Where a recording's metadata came from (``recordings.source``)."""

    MANIFEST = "manifest"
    FREESOUND = "freesound"


class RecordingStatus(StrEnum):
    """Whether a recording was imported (``recordings.status``)."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"


class RejectReason(StrEnum):
    """Why a manifest row or recording was not imported (``import_rejects.reason``, ``recordings.reject_reason``)."""

    MISSING_ID = "missing_id"
    MISSING_FILE = "missing_file"
    EMPTY_FILE = "empty_file"
    CORRUPT_AUDIO = "corrupt_audio"
    NOT_AUDIO = "not_audio"
    TOO_SHORT = "too_short"
    MISSING_COORDINATES = "missing_coordinates"
    BAD_COORDINATES = "bad_coordinates"
    COORDINATES_OUT_OF_RANGE = "coordinates_out_of_range"
    PATH_ESCAPES_ROOT = "path_escapes_root"
    DUPLICATE_ID = "duplicate_id"
    CHANGED_FILE = "changed_file"
    CHANGED_METADATA = "changed_metadata"
    MISSING_IMAGE = "missing_image"
    BAD_IMAGE = "bad_image"
    BAD_ROW = "bad_row"
    # Added in issue 11 (none of these was ever stored under another name):
    UNREADABLE_FILE = "unreadable_file"  # the file is there but cannot be read (permission denied, I/O error)
    BAD_FIELD = "bad_field"  # a field the store cannot hold: a NUL byte, or longer than the manifest limit
    IMPLAUSIBLE_AUDIO = "implausible_audio"  # a header no real recording has (1 Hz, 10,000 channels, …)


class PairOrigin(StrEnum):
    """How a pair came to be (``pairs.origin``): imported, or an offset copy made by export balancing."""

    ORIGINAL = "original"
    OFFSET = "offset"


class OffsetDirection(StrEnum):
    """Direction of an offset pair from its parent (``pairs.direction``), in the order of its index k (1–4)."""

    N = "N"
    E = "E"
    S = "S"
    W = "W"

    @property
    def index(self) -> int:  # type: ignore[override]  # the offset's k, not str.index: never a substring
        """k of the export id ``<recording>_<k>``: N=1, E=2, S=3, W=4."""
        return tuple(OffsetDirection).index(self) + 1


class ImageStatus(StrEnum):
    """Whether a pair has its aerial image (``pairs.image_status``)."""

    PRESENT = "present"
    NEEDS_IMAGERY = "needs_imagery"
    FAILED = "failed"


#: ``pairs.image_source`` of an image that came with the manifest (otherwise it holds the imagery SOURCE string).
IMAGE_SOURCE_MANIFEST = "manifest"


class ImageryFailure(StrEnum):
    """Why an imagery source could not give an image for a point; the prefix of ``pairs.image_error``."""

    OUT_OF_RANGE = "out_of_range"
    TILE_MISSING = "tile_missing"
    FETCH_FAILED = "fetch_failed"
    BAD_TILE = "bad_tile"
    SOURCE_UNUSABLE = "source_unusable"
    IMAGERY_ERROR = "imagery_error"


class LabelSource(StrEnum):
    """Who decided the label a pair is exported with (``label_source`` in metadata.csv)."""

    HUMAN = "human"
    OSM = "osm"


class ReviewOutcome(StrEnum):
    """A review compared with the prediction it was made against (``reviews.outcome``)."""

    ACCEPTED = "accepted"
    CORRECTED = "corrected"
    LABELLED = "labelled"  # no prediction to compare with
    UNUSABLE = "unusable"
    SKIPPED = "skipped"


class PullMode(StrEnum):
    """How ``ls pull`` walked the tasks (``ls_pulls.mode``)."""

    INCREMENTAL = "incremental"
    FULL = "full"


class ProjectPurpose(StrEnum):
    """What a Label Studio project is for (``ls_projects.purpose``)."""

    REVIEW = "review"
    ADJUDICATION = "adjudication"


class TaskKind(StrEnum):
    """Why a Label Studio task exists (``ls_tasks.kind``): the pair's review, or a control item — a pair whose
    label is already settled, served again to measure the annotators (its verdicts never change a final label)."""

    REVIEW = "review"
    CONTROL = "control"
