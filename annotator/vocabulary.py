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
    def index(self) -> int:
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
