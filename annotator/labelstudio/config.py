"""The labelling config of the review project and every payload built from it (SPEC §7, STYLE 3).

The config is generated from :class:`~annotator.vocabulary.SceneClass` plus ``Verdict.UNUSABLE``; predictions
and annotation results are built and validated by the SDK's ``LabelInterface`` for that config, so no
hand-written ``{"from_name": …}`` dicts live anywhere else.
"""

from __future__ import annotations

import json
import uuid
import warnings
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

from annotator.vocabulary import SceneClass, Verdict

if TYPE_CHECKING:
    from label_studio_sdk.label_interface import LabelInterface

IMAGE = "image"
AUDIO = "audio"
VERDICT = "verdict"
COMMENT = "comment"
#: Task data key of the overlay image: the aerial crop with the deciding OSM geometries drawn on it.
OVERLAY = "overlay"
#: Task data key of the model's suggestion ("model suggests forest (p = 0.87) …", from the latest rank run).
MODEL = "model"
#: Task data keys shown beside the media (the evidence an annotator weighs), with their title and tag: HyperText
#: fields hold HTML built by :mod:`annotator.labelstudio.tasks` from escaped values (links to the recording's page
#: and to each OSM element), Text fields plain text. The model's suggestion sits right under the OSM one, so a
#: disagreement between the two is in plain sight.
TEXT_FIELDS = (
    ("pair", "Recording", "HyperText"),
    ("osm", "OSM suggestion", "HyperText"),
    (MODEL, "Model suggestion", "Text"),
    ("osm_tags", "Deciding OSM elements (open on openstreetmap.org)", "HyperText"),
    ("note", "Note", "Text"),
)
#: What a reviewer can choose: the 13 classes in their fixed order, then `unusable`.
VERDICT_CHOICES: tuple[str, ...] = (*(c.value for c in SceneClass), Verdict.UNUSABLE.value)
_PANEL = "flex: 1 1 320px; max-width: 512px"


class PayloadError(ValueError):
    """A prediction or annotation does not fit the labelling config (a programming error, not user input)."""


def _field(key: str, tag: str) -> str:
    if tag == "HyperText":  # inline (no iframe), links open in a new tab, no text selection to annotate
        return (
            f'<HyperText name={quoteattr(key)} value={quoteattr("$" + key)} inline="true" clickableLinks="true" '
            'selectionEnabled="false"/>'
        )
    return f"<Text name={quoteattr(key)} value={quoteattr('$' + key)}/>"


def labelling_config() -> str:
    """The XML labelling config: the aerial image beside the overlay, the audio player, the evidence, one choice
    of 14, an optional comment."""
    texts = "".join(f'<Header value={quoteattr(title)} size="6"/>{_field(key, tag)}' for key, title, tag in TEXT_FIELDS)
    choices = "".join(f"<Choice value={quoteattr(value)}/>" for value in VERDICT_CHOICES)
    return (
        "<View>"
        '<View style="display: flex; flex-wrap: wrap; gap: 12px">'
        f'<View style="{_PANEL}"><Header value="Aerial image" size="6"/>'
        f'<Image name="{IMAGE}" value="${IMAGE}" zoom="true" maxWidth="512px"/></View>'
        f'<View style="{_PANEL}"><Header value="OSM evidence drawn on the image (+ = the recording point)" size="6"/>'
        f'<Image name="{OVERLAY}" value="${OVERLAY}" zoom="true" maxWidth="512px"/></View>'
        "</View>"
        f'<Audio name="{AUDIO}" value="${AUDIO}"/>'
        f"{texts}"
        '<Header value="Scene class (or unusable)"/>'
        f'<Choices name="{VERDICT}" toName="{IMAGE}" choice="single" required="true" showInline="true">'
        f"{choices}</Choices>"
        '<Header value="Comment (optional)"/>'
        f'<TextArea name="{COMMENT}" toName="{IMAGE}" rows="2" maxSubmissions="1" editable="true"/>'
        "</View>"
    )


@lru_cache(maxsize=1)
def label_interface() -> LabelInterface:
    from label_studio_sdk.label_interface import LabelInterface

    return LabelInterface(labelling_config())


def _region(control: str, **kwargs: Any) -> dict[str, Any]:
    with warnings.catch_warnings():  # the SDK's Region.to_json still calls pydantic's deprecated .dict()
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            region = label_interface().get_control(control).label(**kwargs)
        except ValueError as exc:
            raise PayloadError(f"{kwargs} does not fit control {control!r} of the labelling config: {exc}") from exc
        return json.loads(region.to_json())


def annotation_result(verdict: str, comment: str | None = None) -> list[dict[str, Any]]:
    """The `result` list of an annotation choosing `verdict` (a class value or "unusable"), validated."""
    if verdict not in VERDICT_CHOICES:
        raise PayloadError(f"{verdict!r} is not one of the labelling config's choices")
    result = [_region(VERDICT, label=[verdict])]
    if comment:
        result.append(_region(COMMENT, text=[comment]))
    if not label_interface().validate_annotation({"result": result}):
        raise PayloadError(f"annotation for {verdict!r} does not validate against the labelling config")
    return result


def prediction(label: SceneClass | str, *, model_version: str, score: float) -> dict[str, Any]:
    """A task prediction pre-selecting a class (the OSM one, or a rank run's suggestion), validated against the
    labelling config.

    The result of each label is built and validated once (≈3 ms) and copied with a fresh region id after that,
    so pushing thousands of tasks does not spend its time in validation.
    """
    result = [{**region, "id": uuid.uuid4().hex[:10]} for region in _validated_prediction_result(str(label))]
    return {"model_version": model_version, "score": float(score), "result": result}


def blind_prediction(*, model_version: str, score: float) -> dict[str, Any]:
    """A prediction that pre-selects nothing but keeps a task's place in the review queue: an empty `result` with
    the score a pre-selecting prediction would have had.

    Checked against Label Studio 1.23.2 (tests/labelstudio/test_evidence.py): it accepts an empty result, and its
    uncertainty sampling serves such a task among the others by its score, so blind tasks (`build_task(...,
    preselect=False)`) are met in the same order as the rest.
    """
    return {"model_version": model_version, "score": float(score), "result": []}


@lru_cache(maxsize=64)
def _validated_prediction_result(label: str) -> tuple[dict[str, Any], ...]:
    result = [_region(VERDICT, label=[label])]
    pred = {"model_version": "check", "score": 0.5, "result": result}
    errors = label_interface().validate_prediction(pred, return_errors=True)
    if errors:
        raise PayloadError(f"prediction does not validate: {errors}")
    return tuple(result)


def _values(result: list[dict[str, Any]] | None, control: str, key: str) -> list[str]:
    out: list[str] = []
    for region in result or []:
        if region.get("from_name") == control:
            out.extend(str(v) for v in (region.get("value") or {}).get(key) or [])
    return out


def read_verdict(result: list[dict[str, Any]] | None) -> str | None:
    """The chosen class value or "unusable" of an annotation/prediction result; None when nothing valid chosen."""
    chosen = [v for v in _values(result, VERDICT, "choices") if v in VERDICT_CHOICES]
    return chosen[0] if chosen else None


def read_comment(result: list[dict[str, Any]] | None) -> str | None:
    """The free-text comment of an annotation result, or None."""
    text = "\n".join(t for t in _values(result, COMMENT, "text") if t.strip())
    return text or None
