"""The one table that maps OpenStreetMap tags to scene classes (SPEC §6, OSM wiki).

Every rule says which tags it needs, which class it gives, how a point is matched against the feature and in
which tier it competes:

- ``Match.AREA`` features count when their polygon contains the point;
- ``Match.NEAR`` features (bridges, stations, runways: small objects a recordist stands *next to*) count when they
  lie within a radius of the point; inside a polygon the distance is zero.

Tiers decide between candidates: small objects matched by proximity outrank discrete areas (an aerodrome, a lake, a
pitch), which outrank land cover (farmland, forest, residential…). Within a tier the nearer (NEAR) or smaller
(AREA) feature wins. ``weight`` scales the confidence: weaker evidence (``landuse=farmyard``) still labels, with
less confidence. The first rule in table order that matches an element's tags is the element's rule.

The same table builds the Overpass tag filters (:func:`overpass_filters`), so the query asks exactly for what the
decision rule can use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from annotator.vocabulary import SceneClass


class Match(StrEnum):
    """How a point is matched against a feature."""

    AREA = "area"  # the polygon contains the point
    NEAR = "near"  # the feature is within the proximity radius of the point


class Tier(IntEnum):
    """Lower tiers outrank higher ones."""

    SMALL_OBJECT = 0  # bridges, stations, runways (by proximity)
    DISCRETE = 1  # aerodromes, beaches, harbours, water bodies, sports grounds
    LAND_COVER = 2  # farmland, forest, grassland, orchards, residential land, scrub


#: Any value except these counts for a key whose rule accepts any value (``bridge=*``, ``harbour=*``).
NEGATIVE_VALUES = frozenset({"no", "false", "0"})


@dataclass(frozen=True)
class TagRule:
    """One tag→class rule. ``values=None`` means any value of ``key`` except a negative one."""

    key: str
    values: frozenset[str] | None
    scene_class: SceneClass
    match: Match
    tier: Tier
    weight: float = 1.0
    #: Further tags that must all be present with these values (e.g. ``train=yes``).
    requires: tuple[tuple[str, str], ...] = ()
    #: Tag values that exclude the element (e.g. ``water=river``, ``military=naval_base``).
    excludes: tuple[tuple[str, frozenset[str]], ...] = ()
    #: Only counts when a feature of this class is also near the point (``landuse=railway`` near a station).
    needs_nearby: SceneClass | None = None
    note: str = field(default="", compare=False)

    def matches(self, tags: Mapping[str, str]) -> bool:
        value = tags.get(self.key)
        if value is None:
            return False
        if self.values is None:
            if value.strip().lower() in NEGATIVE_VALUES:
                return False
        elif value not in self.values:
            return False
        if any(tags.get(k) != v for k, v in self.requires):
            return False
        return not any(tags.get(k) in vs for k, vs in self.excludes)


def _v(*values: str) -> frozenset[str]:
    return frozenset(values)


_NOT_NAVAL = (("military", _v("naval_base")),)
_LAKE_WATER_EXCLUDED = (
    ("water", _v("river", "canal", "stream", "ditch", "drain", "oxbow", "stream_pool", "wastewater", "moat")),
)

#: The table, in priority order for an element matching several rules.
RULES: tuple[TagRule, ...] = (
    # small objects, matched by distance
    TagRule("aeroway", _v("runway"), SceneClass.AIRPORT, Match.NEAR, Tier.SMALL_OBJECT),
    TagRule("railway", _v("station"), SceneClass.TRAIN_STATION, Match.NEAR, Tier.SMALL_OBJECT),
    TagRule(
        "public_transport",
        _v("station"),
        SceneClass.TRAIN_STATION,
        Match.NEAR,
        Tier.SMALL_OBJECT,
        requires=(("train", "yes"),),
    ),
    TagRule("man_made", _v("bridge"), SceneClass.BRIDGE, Match.NEAR, Tier.SMALL_OBJECT, note="bridge outline"),
    TagRule("bridge", None, SceneClass.BRIDGE, Match.NEAR, Tier.SMALL_OBJECT, note="road/rail way on a bridge"),
    # discrete areas
    TagRule("aeroway", _v("aerodrome"), SceneClass.AIRPORT, Match.AREA, Tier.DISCRETE),
    TagRule("natural", _v("beach"), SceneClass.BEACH, Match.AREA, Tier.DISCRETE),
    TagRule(
        "industrial",
        _v("port"),
        SceneClass.HARBOUR,
        Match.AREA,
        Tier.DISCRETE,
        requires=(("landuse", "industrial"),),
        excludes=_NOT_NAVAL,
    ),
    TagRule("landuse", _v("port"), SceneClass.HARBOUR, Match.AREA, Tier.DISCRETE, excludes=_NOT_NAVAL),
    TagRule("harbour", None, SceneClass.HARBOUR, Match.AREA, Tier.DISCRETE, excludes=_NOT_NAVAL),
    TagRule("leisure", _v("marina"), SceneClass.HARBOUR, Match.AREA, Tier.DISCRETE, excludes=_NOT_NAVAL),
    TagRule(
        "natural",
        _v("water"),
        SceneClass.LAKE,
        Match.AREA,
        Tier.DISCRETE,
        excludes=_LAKE_WATER_EXCLUDED,
        note="water=lake/reservoir/pond or unset (a lake by default)",
    ),
    TagRule("landuse", _v("reservoir"), SceneClass.LAKE, Match.AREA, Tier.DISCRETE),
    TagRule(
        "leisure",
        _v("pitch", "stadium", "sports_centre", "track", "golf_course"),
        SceneClass.SPORTS_LAND,
        Match.AREA,
        Tier.DISCRETE,
    ),
    # land cover
    TagRule(
        "landuse",
        _v("railway"),
        SceneClass.TRAIN_STATION,
        Match.AREA,
        Tier.LAND_COVER,
        weight=0.6,
        needs_nearby=SceneClass.TRAIN_STATION,
        note="track corridors count only near a station",
    ),
    TagRule("landuse", _v("farmland"), SceneClass.FARMLAND, Match.AREA, Tier.LAND_COVER),
    TagRule(
        "landuse",
        _v("farmyard"),
        SceneClass.FARMLAND,
        Match.AREA,
        Tier.LAND_COVER,
        weight=0.5,
        note="farm buildings: weaker evidence",
    ),
    TagRule("landuse", _v("forest"), SceneClass.FOREST, Match.AREA, Tier.LAND_COVER),
    TagRule("natural", _v("wood"), SceneClass.FOREST, Match.AREA, Tier.LAND_COVER),
    TagRule("landuse", _v("meadow", "grass"), SceneClass.GRASSLAND, Match.AREA, Tier.LAND_COVER),
    TagRule("natural", _v("grassland"), SceneClass.GRASSLAND, Match.AREA, Tier.LAND_COVER),
    TagRule("landuse", _v("orchard", "vineyard"), SceneClass.ORCHARD, Match.AREA, Tier.LAND_COVER),
    TagRule("landuse", _v("residential"), SceneClass.RESIDENTIAL, Match.AREA, Tier.LAND_COVER),
    TagRule("natural", _v("scrub", "heath"), SceneClass.SPARSE_SHRUB_LAND, Match.AREA, Tier.LAND_COVER),
)

#: The tag each class is most canonically mapped with (demo world, documentation).
CANONICAL_TAGS: dict[SceneClass, dict[str, str]] = {
    SceneClass.AIRPORT: {"aeroway": "aerodrome"},
    SceneClass.BEACH: {"natural": "beach"},
    SceneClass.BRIDGE: {"man_made": "bridge"},
    SceneClass.FARMLAND: {"landuse": "farmland"},
    SceneClass.FOREST: {"landuse": "forest"},
    SceneClass.GRASSLAND: {"landuse": "meadow"},
    SceneClass.HARBOUR: {"landuse": "industrial", "industrial": "port"},
    SceneClass.LAKE: {"natural": "water", "water": "lake"},
    SceneClass.ORCHARD: {"landuse": "orchard"},
    SceneClass.RESIDENTIAL: {"landuse": "residential"},
    SceneClass.SPARSE_SHRUB_LAND: {"natural": "scrub"},
    SceneClass.SPORTS_LAND: {"leisure": "pitch"},
    SceneClass.TRAIN_STATION: {"railway": "station"},
}


def rule_for(tags: Mapping[str, str]) -> TagRule | None:
    """The first rule of :data:`RULES` the tags match, or None when the element means no class."""
    for rule in RULES:
        if rule.matches(tags):
            return rule
    return None


def overpass_filters() -> list[str]:
    """Overpass QL tag filters, one per rule (deduplicated, table order), e.g. ``["landuse"~"^(grass|meadow)$"]``.

    Exclusions are left to :func:`rule_for` (applied locally), so a filter may return a little more than counts.
    """
    out: list[str] = []
    for rule in RULES:
        if rule.values is None:
            text = f'["{rule.key}"]["{rule.key}"!~"^(no|false|0)$"]'
        elif len(rule.values) == 1:
            text = f'["{rule.key}"="{next(iter(rule.values))}"]'
        else:
            text = f'["{rule.key}"~"^({"|".join(sorted(rule.values))})$"]'
        text += "".join(f'["{k}"="{v}"]' for k, v in rule.requires)
        if text not in out:
            out.append(text)
    return out
