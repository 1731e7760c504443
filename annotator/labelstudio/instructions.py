"""The review project's labelling instructions (Label Studio's ``expert_instruction``, shown before the first task).

Generated from the vocabulary: one entry per :class:`~annotator.vocabulary.SceneClass`, in the fixed order, plus
``unusable``; each says in plain words what to look for in the image and listen for in the sound (after the
ADVANCE release's description: a 10-second clip recorded at a point, the aerial image centred on it, the label from
OpenStreetMap corrected by people where out of date) and lists the OSM tags the class comes from, written from the
tag rules of :mod:`annotator.osm.tags` — so a class or rule added there shows up here without editing this file.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from annotator.osm.decide import DEFAULT_RADIUS_M, DEFAULT_STATION_CONTEXT_M
from annotator.osm.tags import RULES, Match, TagRule
from annotator.vocabulary import SceneClass, Verdict

#: (what to look for in the image, what to listen for in the sound), per class.
DESCRIPTIONS: dict[str, tuple[str, str]] = {
    SceneClass.AIRPORT: (
        "runways (long straight grey strips with white markings), taxiways, aprons with parked aircraft, terminal "
        "buildings, wide mown grass between them",
        "jet or propeller engines, aircraft taking off or landing, airport announcements, service vehicles",
    ),
    SceneClass.BEACH: (
        "a band of sand or pebbles along the water, the line of the surf, towels, umbrellas, people",
        "waves breaking, surf, wind, gulls, people at leisure",
    ),
    SceneClass.BRIDGE: (
        "a road, railway or footpath crossing over water, a valley or another road — often with its shadow on "
        "what lies below",
        "traffic or trains passing over a structure (rumbling, joints thumping), water flowing below",
    ),
    SceneClass.FARMLAND: (
        "cultivated fields in regular parcels: crop rows, tractor tracks, bare soil or an even crop, farm buildings",
        "tractors and farm machinery, livestock, birds of open country, wind",
    ),
    SceneClass.FOREST: (
        "a closed canopy of trees (rough dark green texture; in winter bare crowns or snow between trunks), few gaps",
        "birdsong, wind in leaves or needles, creaking branches, footsteps on the forest floor, little traffic",
    ),
    SceneClass.GRASSLAND: (
        "open grass — meadow or pasture — without crop rows and with few trees; an even green or straw colour",
        "insects, wind in the grass, birds of open country (larks), grazing animals",
    ),
    SceneClass.HARBOUR: (
        "quays, piers, moored ships or boats, cranes, containers, marina pontoons",
        "ship horns and engines, water lapping against hulls, cranes, rigging clinking on masts, gulls",
    ),
    SceneClass.LAKE: (
        "still fresh water — a smooth dark or reflecting surface — over much of the image, with its shore",
        "water lapping, water birds (ducks, geese, loons), rowing or motor boats, calm open acoustics",
    ),
    SceneClass.ORCHARD: (
        "trees or vines planted in regular rows, grass or soil between the rows",
        "birds, insects, orchard machinery, wind in the trees, harvest work",
    ),
    SceneClass.RESIDENTIAL: (
        "houses and their roofs, gardens, streets with parked cars, blocks of flats",
        "voices, children, dogs, passing cars, doors, garden tools, household sounds",
    ),
    SceneClass.SPARSE_SHRUB_LAND: (
        "scattered bushes and low vegetation on bare, sandy or rocky ground, heath; no closed canopy",
        "wind, insects, sparse birdsong, a lot of quiet",
    ),
    SceneClass.SPORTS_LAND: (
        "pitches with painted lines, running tracks, stadium stands, tennis courts, golf greens",
        "crowds, whistles, balls being kicked or hit, shouting, announcements",
    ),
    SceneClass.TRAIN_STATION: (
        "platforms along several parallel tracks, station buildings and canopies, trains standing at platforms",
        "trains arriving and leaving, brakes squealing, platform announcements, departure signals, crowds",
    ),
}
#: What a class without a written description shows (a class added to the vocabulary before its words are).
UNDESCRIBED = ("(no description written yet: judge by the class name)", "(no description written yet)")
UNUSABLE_TEXT = (
    "Choose <b>unusable</b> when the pair gives no basis for a scene class: the image is blank, black, "
    "cloud-covered, corrupt or not an aerial view; the sound is silent, pure noise or hum, music or speech only, or "
    "clearly recorded indoors or somewhere else than the image shows; or the place is none of the classes above "
    "(a desert, a wind farm, a quarry…). Unusable pairs are left out of the dataset."
)


def _rule_text(rule: TagRule) -> str:
    """e.g. ``landuse=forest``, ``bridge=* (within 40 m of the point)``, ``+ train=yes``."""
    values = "*" if rule.values is None else "/".join(sorted(rule.values))
    text = f"{rule.key}={values}"
    text += "".join(f" + {k}={v}" for k, v in rule.requires)
    notes = []
    if rule.match is Match.NEAR:
        notes.append(f"within {DEFAULT_RADIUS_M:.0f} m of the point")
    if rule.needs_nearby is not None:
        notes.append(f"only with a {rule.needs_nearby.value} within {DEFAULT_STATION_CONTEXT_M:.0f} m")
    notes.extend(f"not {k}={'/'.join(sorted(vs))}" for k, vs in rule.excludes if len(vs) <= 3)
    if rule.weight < 1.0:
        notes.append("weaker evidence")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def osm_tags_of(scene_class: str) -> list[str]:
    """The OSM tag rules that give `scene_class`, in table order, as short texts."""
    return [_rule_text(rule) for rule in RULES if rule.scene_class == scene_class]


def project_instructions(classes: Iterable[str] = SceneClass) -> str:
    """The HTML of the review project's labelling instructions: how to decide, then every class of `classes`
    (the vocabulary by default) and ``unusable``, each with what to look and listen for and its OSM tags."""
    rows = []
    for scene_class in classes:
        look, listen = DESCRIPTIONS.get(scene_class, UNDESCRIBED)
        tags = osm_tags_of(scene_class)
        tag_html = ", ".join(f"<code>{escape(t)}</code>" for t in tags) or "no OSM tag maps to this class"
        rows.append(
            f"<li><b>{escape(str(scene_class))}</b> — <i>look for</i> {escape(look)}; "
            f"<i>listen for</i> {escape(listen)}. <small>OSM: {tag_html}</small></li>"
        )
    return (
        "<h3>What you decide</h3>"
        "<p>Each task is one place: a 10-second sound clip recorded at a point, and the aerial image centred on "
        "that point (about 256 m across; the point is the centre, marked + on the second image). Choose the "
        "<b>scene class of the place where the sound was recorded</b>: what covers the centre of the image and "
        "what the clip sounds like. The image usually decides; the sound settles doubt between neighbours "
        "(a lake shore or a beach, a meadow or farmland).</p>"
        "<p>The class OpenStreetMap suggests is usually pre-selected. It can be wrong or out of date: the second "
        "image draws the OSM shapes that decided it on the photo, and the evidence lists each element with a link "
        "to openstreetmap.org and the age of its last edit (an old edit is a reason to look twice). Accept it only "
        "when the image and the sound agree with it; otherwise choose the right class. Some tasks come with "
        "nothing pre-selected: choose as you would anyway.</p>"
        f"<h3>The classes</h3><ul>{''.join(rows)}</ul>"
        f"<h3>{escape(Verdict.UNUSABLE.value)}</h3><p>{UNUSABLE_TEXT}</p>"
        "<p>Skip a task only when you cannot judge it (the media do not load); add a comment when something is "
        'worth knowing ("a marina, not a lake").</p>'
    )
