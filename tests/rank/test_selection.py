"""Which pairs `rank` scores and which label each trains with, read from a real planted store (no training)."""

from __future__ import annotations

from sqlalchemy import select

from annotator.rank import RankSkip, select_candidates
from annotator.rank.run import sample_refs, training_labels
from annotator.store import Pair, session_scope
from annotator.vocabulary import FinalReason, LabelSource, PairOrigin, SceneClass
from tests.rank.world import plant_store


def _selection(engine, media_dir):
    with session_scope(engine) as session:
        return select_candidates(session, media_dir)


def test_every_usable_pair_is_scored_with_its_current_label(engine, location):
    planted = plant_store(engine, location.media_dir)
    selection = _selection(engine, location.media_dir)
    by_id = {c.pair_id: c for c in selection.candidates}
    assert [c.pair_id for c in selection.candidates] == sorted(planted.scored)  # pair-id order, offsets included
    assert selection.skipped == {RankSkip.UNUSABLE: 1, RankSkip.NO_IMAGE: 1}
    [human] = planted.human
    assert by_id[human].label_origin == LabelSource.HUMAN and by_id[human].current_label == planted.truth[human]
    [no_osm] = planted.no_osm
    assert by_id[no_osm].current_label is None and by_id[no_osm].label_origin is None
    for stale in planted.stale:  # the OSM label, wrong as it is
        assert by_id[stale].label_origin == LabelSource.OSM
        assert by_id[stale].current_label not in (None, planted.truth[stale])
        assert by_id[stale].osm is not None and by_id[stale].osm.coverage == 0.8
    for parent, offsets in planted.offsets.items():  # offsets: their parent's recording (fold group) and label
        for offset in offsets:
            assert by_id[offset].origin == PairOrigin.OFFSET
            assert by_id[offset].group == by_id[parent].group
            assert by_id[offset].current_label == by_id[parent].current_label
            assert by_id[offset].recording_source_id == planted.source_ids[parent]
    labels = training_labels(selection.candidates)
    assert sum(label is None for label in labels) == 1
    refs = sample_refs(selection.candidates, location.media_dir)
    assert all(r.image_path.is_file() and r.audio_path.is_file() for r in refs)
    assert len({r.id for r in refs}) == len(refs)


def test_human_verdicts_replace_the_osm_label_except_conflicts_and_osm_only(engine, location):
    planted = plant_store(engine, location.media_dir)
    stale_a, stale_b, stale_c = planted.stale
    parent = next(iter(planted.offsets))
    with session_scope(engine) as session:
        for pair_id, label, reason in (
            (stale_a, planted.truth[stale_a].value, FinalReason.SINGLE_REVIEW),  # corrected by a reviewer
            (stale_b, planted.truth[stale_b].value, FinalReason.CONFLICT),  # reviewers disagree: OSM's stays
            (stale_c, planted.truth[stale_c].value, FinalReason.OSM_ONLY),  # no human decision
            (parent, SceneClass.BEACH.value, FinalReason.MAJORITY),  # its offsets follow
        ):
            pair = session.get(Pair, pair_id)
            pair.final_label, pair.final_reason = label, reason
    by_id = {c.pair_id: c for c in _selection(engine, location.media_dir).candidates}
    assert (by_id[stale_a].current_label, by_id[stale_a].label_origin) == (planted.truth[stale_a], LabelSource.HUMAN)
    assert by_id[stale_b].label_origin == by_id[stale_c].label_origin == LabelSource.OSM
    assert by_id[stale_b].current_label != planted.truth[stale_b]
    for offset in planted.offsets[parent]:
        assert (by_id[offset].current_label, by_id[offset].label_origin) == (SceneClass.BEACH, LabelSource.HUMAN)


def test_an_offset_pair_with_its_own_verdict_keeps_it_and_an_unusable_parent_leaves_its_offsets_out(engine, location):
    planted = plant_store(engine, location.media_dir)
    first, second = list(planted.offsets)[:2]
    own = planted.offsets[first][0]
    with session_scope(engine) as session:
        offset = session.get(Pair, own)
        offset.final_label, offset.final_reason = SceneClass.HARBOUR.value, FinalReason.SINGLE_REVIEW
        unusable = session.get(Pair, second)
        unusable.final_label, unusable.final_reason = "unusable", FinalReason.SINGLE_REVIEW
    selection = _selection(engine, location.media_dir)
    by_id = {c.pair_id: c for c in selection.candidates}
    assert by_id[own].current_label == SceneClass.HARBOUR
    assert by_id[planted.offsets[first][1]].current_label == by_id[first].current_label
    assert second not in by_id and not set(planted.offsets[second]) & set(by_id)
    assert selection.skipped[RankSkip.UNUSABLE] == 1 + 1 + 2  # the planted one, the parent and its two offsets
    with session_scope(engine) as session:
        assert session.scalar(select(Pair.final_label).where(Pair.id == second)) == "unusable"
