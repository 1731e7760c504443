"""Selection and balancing rules, on a real store (library level, no export written)."""

from __future__ import annotations

from annotator.export.samples import recording_ids
from annotator.export.selection import SelectedPair, select_pairs
from annotator.store import session_scope
from annotator.vocabulary import FinalReason, LabelSource, RecordingSource, SceneClass
from dataset.balance import plan_balance
from dataset.layout import safe_id
from tests.export.world import PairSpec, labelled, plant_pairs


def _select(engine, location, include_unreviewed=False):
    with session_scope(engine) as session:
        return select_pairs(session, location.media_dir, include_unreviewed=include_unreviewed)


def test_only_human_labels_by_default_and_osm_labels_marked_when_asked(engine, location):
    plant_pairs(
        engine,
        location,
        [
            PairSpec("reviewed", final_label=SceneClass.LAKE.value, osm_label=SceneClass.BEACH),
            PairSpec("unreviewed", osm_label=SceneClass.FOREST),
            PairSpec("nothing"),  # no review and OSM matched nothing
            PairSpec("unusable", final_label="unusable", osm_label=SceneClass.FOREST),
            PairSpec("conflict", final_label=None, final_reason=None, osm_label=SceneClass.FOREST),
            PairSpec(
                "osm-only",
                final_label=SceneClass.FOREST.value,
                final_reason=FinalReason.OSM_ONLY.value,
                osm_label=SceneClass.FOREST,
            ),
        ],
    )
    # A conflict as review resolution leaves it: reason set, no label.
    from annotator.store.models import Pair, Recording

    with session_scope(engine) as session:
        pair = session.query(Pair).join(Recording).filter(Recording.source_id == "conflict").one()
        pair.final_reason = FinalReason.CONFLICT.value

    default = _select(engine, location)
    assert [p.source_id for p in default.pairs] == ["reviewed"]
    assert default.pairs[0].label is SceneClass.LAKE and default.pairs[0].label_source == "human"
    assert default.pairs[0].osm_label == SceneClass.BEACH.value
    assert default.skipped == {"unreviewed": 3, "unusable": 1, "conflict": 1}

    widened = _select(engine, location, include_unreviewed=True)
    by_id = {p.source_id: p for p in widened.pairs}
    assert set(by_id) == {"reviewed", "unreviewed", "osm-only"}
    assert by_id["unreviewed"].label is SceneClass.FOREST and by_id["unreviewed"].label_source == "osm"
    assert by_id["unreviewed"].human_label is None
    assert by_id["osm-only"].label_source == "osm"  # an osm_only final label is not a human review
    assert widened.skipped == {"no_osm_label": 1, "unusable": 1, "conflict": 1}


def test_pairs_without_media_are_counted_not_exported(engine, location):
    ids = plant_pairs(
        engine, location, [*labelled(SceneClass.LAKE, 2), PairSpec("noimg", SceneClass.LAKE.value, with_image=False)]
    )
    (location.media_dir / f"clips/{ids[1]}.wav").unlink()
    selection = _select(engine, location)
    assert [p.pair_id for p in selection.pairs] == [ids[0]]
    assert selection.skipped == {"clip_file_missing": 1, "no_image": 1}


def _fake(label: SceneClass, n: int) -> list[SelectedPair]:
    return [
        SelectedPair(
            i,
            i,
            RecordingSource.MANIFEST,
            f"{label.value}{i}",
            label,
            LabelSource.HUMAN,
            None,
            label.value,
            (),
            0.0,
            0.0,
            "i.jpg",
            "c.wav",
            None,
            None,
        )
        for i in range(n)
    ]


def test_thresholds_at_their_edges():
    pairs = _fake(SceneClass.AIRPORT, 9) + _fake(SceneClass.BEACH, 10) + _fake(SceneClass.LAKE, 99)
    pairs += _fake(SceneClass.FOREST, 100)
    plan = plan_balance(pairs, min_per_class=10, augment_below=100)
    assert plan.dropped == {SceneClass.AIRPORT: 9}
    assert plan.kept == (SceneClass.BEACH, SceneClass.FOREST, SceneClass.LAKE)
    assert plan.augmented == (SceneClass.BEACH, SceneClass.LAKE)  # 10 and 99 pairs; forest's 100 are enough


def test_ids_are_filesystem_safe_and_unique():
    assert safe_id("rec_01/../x y") == "rec-01-..-x-y"
    assert safe_id("..") == "recording"
    pairs = [
        SelectedPair(
            1,
            1,
            RecordingSource.MANIFEST,
            "a b",
            SceneClass.LAKE,
            LabelSource.HUMAN,
            None,
            None,
            (),
            0,
            0,
            "",
            "",
            None,
            None,
        ),
        SelectedPair(
            2,
            2,
            RecordingSource.FREESOUND,
            "a_b",
            SceneClass.LAKE,
            LabelSource.HUMAN,
            None,
            None,
            (),
            0,
            0,
            "",
            "",
            None,
            None,
        ),
        SelectedPair(
            3,
            3,
            RecordingSource.FREESOUND,
            "12345",
            SceneClass.LAKE,
            LabelSource.HUMAN,
            None,
            None,
            (),
            0,
            0,
            "",
            "",
            None,
            None,
        ),
    ]
    ids = recording_ids(pairs)
    assert ids[3] == "12345"
    assert ids[1] != ids[2] and ids[1].startswith("a-b-") and ids[2].startswith("a-b-")
    assert all("_" not in i and "/" not in i for i in ids.values())
