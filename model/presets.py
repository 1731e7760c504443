"""Named starting points for a training run: ``small`` (CPU, tests, demos) and ``paper`` (Hu et al.'s protocol).

A preset is a set of :class:`~model.config.TrainConfig` field values; :func:`resolve_config` starts from one and
lets every flag the user gave win, so ``--preset paper --lr 1e-4`` is the paper's protocol with another learning
rate. The resolved configuration (with ``preset`` recorded in it) is what the checkpoint stores.

The ``paper`` values, point by point, from the authors' code (DTaoo/Multimodal-Aerial-Scene-Recognition,
``model/main.py``, ``model/CVS_dataset.py``, ``resnet-audio/resnet_audio.py``) and the paper:

* ``image_arch="resnet101"``: their image branch (``resnet_image.resnet101``), 2048-d pooled features.
* ``audio_arch="resnet50"``: their 1-channel ResNet-50 (7×7 stem with stride 1 as in their code, Bottleneck
  layers [3, 4, 6, 3]), 2048-d; the head is then Linear(4096, 13).
* ``lr=1e-5``, ``weight_decay=1e-4``, ``batch_size=64``: Adam as in the paper (their script's default lr is
  1e-3; the paper reports 1e-5 for the pretrained branches).
* ``lr_milestones=(30, 60, 90)``, ``lr_gamma=0.1``: their ``decrease_learning_rate`` at epochs 30/60/90.
* ``epochs=100`` and ``patience=100``: past epoch 90 the rate is 1e-8, so 100 epochs cover the schedule (their
  script's 2000 is a loop bound, not a protocol); no early stopping, which would cut the schedule short.
* ``augment=True``: horizontal flip p = 0.5, brightness and colour factors uniform in [0.7, 1.3] (their
  ``augment_image``), training only.
* ``image_size=256``: their ``image.resize((256, 256))``.
* ``features="paper"``: their log-mel — librosa at 16 kHz, STFT n_fft 4096 with a 1024-sample Hann window and
  hop 400, magnitude (not power) spectrum, 64 Slaney mel bands to 8 kHz, ``power_to_db`` (ref 1, amin 1e-10,
  top_db 80) over the first 400 frames, time × mel layout, one global mean/std normalisation.
* ``image_input="imagenet"``: the preset starts without pretrained weights (nothing is downloaded unless asked);
  ``--image-weights imagenet`` needs ImageNet normalisation, while the authors' AID weights need
  ``--image-input raw`` (they fed 0–255 RGB).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from annotator.errors import TrainingError
from model.config import TrainConfig

PRESETS: dict[str, dict[str, Any]] = {
    # Today's defaults: every field at its dataclass default (sizes picked per device by for_device()).
    "small": {"preset": "small"},
    "paper": {
        "preset": "paper",
        "image_arch": "resnet101",
        "audio_arch": "resnet50",
        "image_size": 256,
        "image_input": "imagenet",
        "features": "paper",
        "lr": 1e-5,
        "weight_decay": 1e-4,
        "batch_size": 64,
        "epochs": 100,
        "patience": 100,
        "lr_milestones": (30, 60, 90),
        "lr_gamma": 0.1,
        "augment": True,
    },
}


def resolve_config(preset: str, overrides: Mapping[str, Any]) -> TrainConfig:
    """The preset's values, then every override whose value is not None (a flag the user gave).

    Raises:
        TrainingError: an unknown preset (naming the choices), an unknown field, or an invalid resolved value.
    """
    if preset not in PRESETS:
        raise TrainingError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TrainingError(f"unknown training setting(s) {', '.join(unknown)}")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}, "preset": preset}
    return TrainConfig(**values)
