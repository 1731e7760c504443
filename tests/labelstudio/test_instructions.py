"""The labelling instructions are generated from the vocabulary and the OSM tag rules: every class, `unusable`,
each class's tags; a class added to the vocabulary shows up without editing the instructions."""

from __future__ import annotations

import re
from enum import StrEnum
from html.parser import HTMLParser

from annotator.labelstudio.instructions import DESCRIPTIONS, UNDESCRIBED, osm_tags_of, project_instructions
from annotator.osm.tags import RULES
from annotator.vocabulary import SceneClass, Verdict


def _text(html: str) -> str:
    parser = HTMLParser()
    chunks: list[str] = []
    parser.handle_data = chunks.append  # type: ignore[method-assign]
    parser.feed(html)
    return "".join(chunks)


def _entries(html: str) -> dict[str, str]:
    """Class name → its list entry's text."""
    return {m.group(1): _text(m.group(0)) for m in re.finditer(r"<li><b>([^<]+)</b>.*?</li>", html)}


def test_every_class_and_unusable_is_defined_in_vocabulary_order() -> None:
    html = project_instructions()
    entries = _entries(html)
    assert list(entries) == [c.value for c in SceneClass]
    for scene_class in SceneClass:
        entry = entries[scene_class.value]
        look, listen = DESCRIPTIONS[scene_class]
        assert "look for" in entry and look in entry and "listen for" in entry and listen in entry
    assert f"<h3>{Verdict.UNUSABLE.value}</h3>" in html and "Choose <b>unusable</b>" in html


def test_each_class_lists_the_osm_tags_of_its_rules() -> None:
    entries = _entries(project_instructions())
    for rule in RULES:
        key_value = f"{rule.key}=" + ("*" if rule.values is None else "/".join(sorted(rule.values)))
        assert key_value in entries[rule.scene_class.value], (rule, entries[rule.scene_class.value])
    assert "bridge=* (within 40 m of the point)" in entries["bridge"]
    assert "public_transport=station + train=yes" in entries["train station"]
    assert "landuse=railway (only with a train station within 300 m; weaker evidence)" in entries["train station"]
    assert all(osm_tags_of(c) for c in SceneClass)  # every class comes from at least one rule


def test_a_class_added_to_the_vocabulary_shows_up() -> None:
    extended = StrEnum("Extended", {**{c.name: c.value for c in SceneClass}, "WIND_FARM": "wind farm"})
    entries = _entries(project_instructions(extended))
    assert list(entries) == [*(c.value for c in SceneClass), "wind farm"]
    assert UNDESCRIBED[0] in entries["wind farm"] and "no OSM tag maps to this class" in entries["wind farm"]
    assert set(DESCRIPTIONS) == set(SceneClass)  # and every real class has its words written
