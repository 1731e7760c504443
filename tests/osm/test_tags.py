"""The tag→class table, rule by rule (SPEC §6 mapping, OSM wiki notes)."""

from __future__ import annotations

import re

import pytest

from annotator.osm.tags import CANONICAL_TAGS, RULES, Match, Tier, overpass_filters, rule_for
from annotator.vocabulary import SceneClass

C = SceneClass

# Written out from SPEC §6 independently of the table: tags -> expected class.
SPEC_MAPPING = [
    ({"aeroway": "aerodrome"}, C.AIRPORT),
    ({"aeroway": "runway"}, C.AIRPORT),
    ({"natural": "beach"}, C.BEACH),
    ({"man_made": "bridge"}, C.BRIDGE),
    ({"highway": "secondary", "bridge": "yes"}, C.BRIDGE),
    ({"railway": "rail", "bridge": "viaduct"}, C.BRIDGE),
    ({"landuse": "farmland"}, C.FARMLAND),
    ({"landuse": "farmyard"}, C.FARMLAND),
    ({"landuse": "forest"}, C.FOREST),
    ({"natural": "wood"}, C.FOREST),
    ({"landuse": "meadow"}, C.GRASSLAND),
    ({"landuse": "grass"}, C.GRASSLAND),
    ({"natural": "grassland"}, C.GRASSLAND),
    ({"landuse": "industrial", "industrial": "port"}, C.HARBOUR),
    ({"landuse": "port"}, C.HARBOUR),
    ({"harbour": "yes"}, C.HARBOUR),
    ({"leisure": "marina"}, C.HARBOUR),
    ({"natural": "water"}, C.LAKE),
    ({"natural": "water", "water": "lake"}, C.LAKE),
    ({"natural": "water", "water": "reservoir"}, C.LAKE),
    ({"natural": "water", "water": "pond"}, C.LAKE),
    ({"landuse": "reservoir"}, C.LAKE),
    ({"landuse": "orchard"}, C.ORCHARD),
    ({"landuse": "vineyard"}, C.ORCHARD),
    ({"landuse": "residential"}, C.RESIDENTIAL),
    ({"natural": "scrub"}, C.SPARSE_SHRUB_LAND),
    ({"natural": "heath"}, C.SPARSE_SHRUB_LAND),
    ({"leisure": "pitch"}, C.SPORTS_LAND),
    ({"leisure": "stadium"}, C.SPORTS_LAND),
    ({"leisure": "sports_centre"}, C.SPORTS_LAND),
    ({"leisure": "track"}, C.SPORTS_LAND),
    ({"leisure": "golf_course"}, C.SPORTS_LAND),
    ({"railway": "station"}, C.TRAIN_STATION),
    ({"public_transport": "station", "train": "yes"}, C.TRAIN_STATION),
    ({"landuse": "railway"}, C.TRAIN_STATION),
]

NO_CLASS = [
    {"natural": "water", "water": "river"},  # rivers, canals, streams are not lakes
    {"natural": "water", "water": "canal"},
    {"natural": "water", "water": "stream"},
    {"landuse": "industrial"},  # industrial land without industrial=port
    {"industrial": "port"},  # industrial=port needs landuse=industrial
    {"landuse": "port", "military": "naval_base"},  # naval bases are not harbours
    {"harbour": "yes", "military": "naval_base"},
    {"harbour": "no"},
    {"highway": "primary", "bridge": "no"},
    {"public_transport": "station", "bus": "yes"},  # a bus station is not a train station
    {"leisure": "park"},  # parks, gardens, commercial land: no ADVANCE class
    {"leisure": "garden"},
    {"landuse": "commercial"},
    {"landuse": "cemetery"},
    {"railway": "rail"},
    {},
]


@pytest.mark.parametrize(("tags", "expected"), SPEC_MAPPING, ids=[str(t) for t, _ in SPEC_MAPPING])
def test_spec_mapping(tags: dict[str, str], expected: SceneClass) -> None:
    rule = rule_for(tags)
    assert rule is not None and rule.scene_class is expected


@pytest.mark.parametrize("tags", NO_CLASS, ids=[str(t) for t in NO_CLASS])
def test_tags_without_class(tags: dict[str, str]) -> None:
    assert rule_for(tags) is None


def _sample_tags(rule) -> dict[str, str]:  # type: ignore[no-untyped-def]
    value = "yes" if rule.values is None else sorted(rule.values)[0]
    return {rule.key: value, **dict(rule.requires)}


@pytest.mark.parametrize("rule", RULES, ids=[f"{r.key}={sorted(r.values or ['*'])}" for r in RULES])
def test_every_rule_is_reachable_and_covered_by_its_overpass_filter(rule) -> None:  # type: ignore[no-untyped-def]
    tags = _sample_tags(rule)
    assert rule_for(tags) is rule
    assert any(_filter_matches(f, tags) for f in overpass_filters())


def test_small_objects_are_matched_by_proximity_and_outrank_areas() -> None:
    near = {r.scene_class for r in RULES if r.match is Match.NEAR}
    assert near == {C.BRIDGE, C.TRAIN_STATION, C.AIRPORT}
    assert all(r.tier is Tier.SMALL_OBJECT for r in RULES if r.match is Match.NEAR)
    assert rule_for({"landuse": "forest"}).tier > rule_for({"leisure": "pitch"}).tier  # type: ignore[union-attr]


def test_weaker_evidence_has_lower_weight() -> None:
    assert rule_for({"landuse": "farmyard"}).weight < rule_for({"landuse": "farmland"}).weight  # type: ignore[union-attr]
    railway = rule_for({"landuse": "railway"})
    assert railway is not None and railway.needs_nearby is C.TRAIN_STATION


def test_canonical_tags_cover_every_class_and_map_back() -> None:
    assert set(CANONICAL_TAGS) == set(SceneClass)
    for scene_class, tags in CANONICAL_TAGS.items():
        rule = rule_for(tags)
        assert rule is not None and rule.scene_class is scene_class


def _filter_matches(text: str, tags: dict[str, str]) -> bool:
    for key, op, value in re.findall(r'\["([^"]+)"(?:(=|!~|~)"([^"]*)")?\]', text):
        have = tags.get(key)
        if op == "" and have is None:
            return False
        if op == "=" and have != value:
            return False
        if op == "~" and (have is None or not re.search(value, have)):
            return False
        if op == "!~" and have is not None and re.search(value, have):
            return False
    return True
