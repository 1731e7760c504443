"""What a rank run is asked to do (:class:`RankOptions`) and the training configuration it resolves to.

`rank` trains one model per fold, so its defaults are smaller than `train`'s: on a CPU the ``small`` preset runs
with :data:`model.oof.CPU_RANK_SETTINGS` (64 px images, an audio CNN of width 8, batch 16, lr 3e-3, 6 epochs),
which ranks ~200 pairs in a few minutes on two cores. On CUDA the small preset keeps its own device sizes (256 px,
width 32) and trains :data:`RANK_SMALL_EPOCHS` epochs; the ``paper`` preset keeps all of its values. Any option
given wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotator.errors import TrainingError
from model.config import TrainConfig
from model.presets import resolve_config

#: Epochs per fold of the small preset on CUDA (on a CPU, :data:`model.oof.CPU_RANK_SETTINGS` decides).
RANK_SMALL_EPOCHS = 6
DEFAULT_FOLDS = 5


@dataclass(frozen=True)
class RankOptions:
    """The parameters of one rank run (stored with it).

    Attributes:
        folds: k of the k-fold cross-validation (≥ 2); folds are grouped by recording, stratified by class.
        epochs: epochs per fold; None: 6 for the small preset, the preset's own for ``paper``.
        preset: ``small`` or ``paper`` (:mod:`model.presets`).
        modality: ``both`` (fusion), ``image`` or ``audio``.
        device: ``auto``, ``cuda`` or ``cpu``.
        seed: seeds the folds, the initial weights and the batch order: same store + seed → same ranking.
        image_size: side of the image input; None: 64 on a CPU for the small preset, else the preset's.
        audio_width: first-stage channels of the small audio CNN; None: 8 on a CPU for the small preset.
        osm_weight: weight of OSM's own evidence (edit age, coverage, confidence) in the suspicion of an OSM
            label, in [0, 1]; 0 (the default) ranks on the model's out-of-fold probabilities alone (see
            :mod:`annotator.rank.suspicion`).
        cache_dir: the feature cache [default: ``$ANNOTATOR_CACHE`` or ``~/.cache/annotator/features``].
    """

    folds: int = DEFAULT_FOLDS
    epochs: int | None = None
    preset: str = "small"
    modality: str = "both"
    device: str = "auto"
    seed: int = 0
    image_size: int | None = None
    audio_width: int | None = None
    osm_weight: float = 0.0
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise TrainingError(
                f"--folds must be at least 2 (a pair is scored by a model of the other folds), not {self.folds}"
            )
        if not 0.0 <= self.osm_weight <= 1.0:
            raise TrainingError(f"--osm-weight must be between 0 and 1, not {self.osm_weight}")

    def to_params(self) -> dict[str, Any]:
        """The run's parameters as stored in ``rank_runs.params`` (the cache folder is no parameter)."""
        return {
            "folds": self.folds,
            "epochs": self.epochs,
            "preset": self.preset,
            "modality": self.modality,
            "device": self.device,
            "seed": self.seed,
            "image_size": self.image_size,
            "audio_width": self.audio_width,
            "osm_weight": self.osm_weight,
        }


def training_config(options: RankOptions, device_type: str) -> TrainConfig:
    """The :class:`~model.config.TrainConfig` each fold trains with, for a device of `device_type`.

    Raises:
        TrainingError: an unknown preset or an invalid setting (naming it).
    """
    from model.oof import CPU_RANK_SETTINGS  # model.oof imports torch; the package stays light for `status`

    overrides: dict[str, Any] = {}
    if options.preset == "small":
        overrides = dict(CPU_RANK_SETTINGS) if device_type != "cuda" else {"epochs": RANK_SMALL_EPOCHS}
    given = {
        "modality": options.modality,
        "device": options.device,
        "seed": options.seed,
        "epochs": options.epochs,
        "image_size": options.image_size,
        "audio_width": options.audio_width,
    }
    overrides.update({name: value for name, value in given.items() if value is not None})
    return resolve_config(options.preset, overrides).for_device(device_type)
