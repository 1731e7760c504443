"""The labelling config, its payloads and the final-label rule — no server needed."""

from __future__ import annotations

import re

import pytest

from annotator.labelstudio import config as lsconfig
from annotator.labelstudio.pull import LS_FILTER_FORMAT, format_checkpoint, outcome_of, parse_ls_datetime
from annotator.review import resolve_final_label
from annotator.vocabulary import CLASS_ORDER, FinalReason, SceneClass, Verdict


def test_config_offers_the_13_classes_in_order_then_unusable():
    xml = lsconfig.labelling_config()
    assert re.findall(r'<Choice value="([^"]+)"/>', xml) == [c.value for c in CLASS_ORDER] + ["unusable"]
    interface = lsconfig.label_interface()
    assert interface.get_control("verdict").labels == [c.value for c in CLASS_ORDER] + ["unusable"]
    for name in ("image", "audio", "pair", "osm", "osm_tags", "note"):
        assert interface.get_object(name) is not None
    assert '<Audio name="audio"' in xml and 'choice="single"' in xml and "<TextArea" in xml


def test_predictions_and_results_are_built_and_read_back():
    pred = lsconfig.prediction(SceneClass.SPARSE_SHRUB_LAND, model_version="osm:x@2024-01-01", score=0.25)
    assert pred["score"] == 0.25 and lsconfig.read_verdict(pred["result"]) == "sparse shrub land"
    result = lsconfig.annotation_result(Verdict.UNUSABLE.value, comment="silent clip")
    assert lsconfig.read_verdict(result) == "unusable" and lsconfig.read_comment(result) == "silent clip"
    assert lsconfig.read_verdict([]) is None
    with pytest.raises(lsconfig.PayloadError):
        lsconfig.annotation_result("desert")
    with pytest.raises(lsconfig.PayloadError):
        lsconfig.prediction("wind turbines", model_version="x", score=0.1)


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ([], (None, None)),
        (["skipped"], (None, None)),
        (["forest"], ("forest", FinalReason.SINGLE_REVIEW)),
        (["forest", "skipped"], ("forest", FinalReason.SINGLE_REVIEW)),
        (["lake", "lake"], ("lake", FinalReason.MAJORITY)),
        (["lake", "forest"], (None, FinalReason.CONFLICT)),
        (["lake", "forest", "lake"], ("lake", FinalReason.MAJORITY)),
        (["unusable", "unusable", "lake"], ("unusable", FinalReason.MAJORITY)),
        (["lake", "forest", "beach"], (None, FinalReason.CONFLICT)),
    ],
)
def test_resolve_final_label(verdicts, expected):
    assert resolve_final_label(verdicts) == expected


def test_outcomes_and_checkpoint_format():
    assert outcome_of("forest", "forest") == "accepted"
    assert outcome_of("lake", "forest") == "corrected"
    assert outcome_of("lake", None) == "labelled"
    assert outcome_of("unusable", "forest") == "unusable"
    assert outcome_of("skipped", None) == "skipped"
    stamp = parse_ls_datetime("2026-11-26T17:05:41.720159Z")
    assert format_checkpoint(stamp) == "2026-11-26T17:05:41.720159Z"
    assert LS_FILTER_FORMAT == "%Y-%m-%dT%H:%M:%S.%fZ"
    assert parse_ls_datetime("2026-11-26 17:05:41.161230+00:00") == parse_ls_datetime("2026-11-26T17:05:41.16123Z")


def test_help_has_examples_and_never_shows_the_key(cli):
    secret = "f00d" * 10
    for command in ("push", "pull"):
        out = cli("ls", command, "--help", env={"LABEL_STUDIO_API_KEY": secret})
        assert "Example" in out.stdout and "--ls-api-key" in out.stdout and secret not in out.stdout


def test_missing_url_or_key_is_one_clear_sentence(cli, engine):
    out = cli("ls", "push", expect=1, env={"LABEL_STUDIO_URL": "", "LABEL_STUDIO_API_KEY": ""})
    assert "no Label Studio URL" in out.stderr
    out = cli("ls", "pull", "--ls-url", "http://127.0.0.1:9", expect=1, env={"LABEL_STUDIO_API_KEY": ""})
    assert "no Label Studio API key" in out.stderr
