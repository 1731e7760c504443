"""The one frozen dataclass that holds a training run's hyperparameters (STYLE: nanoGPT-style config).

The field defaults are the ``small`` preset: a ResNet-18 image branch and a small audio CNN, so a CPU run is
practical. :mod:`model.presets` holds ``small`` and ``paper`` (the authors' networks, optimiser and schedule) and
resolves a preset plus the user's flags into one of these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Any

from annotator.errors import TrainingError


class Modality(StrEnum):
    """Which branches the classifier uses: the fusion model or one of the single-modality baselines."""

    BOTH = "both"
    IMAGE = "image"
    AUDIO = "audio"

    @property
    def uses_image(self) -> bool:
        return self in (Modality.BOTH, Modality.IMAGE)

    @property
    def uses_audio(self) -> bool:
        return self in (Modality.BOTH, Modality.AUDIO)


IMAGE_ARCHS = ("resnet18", "resnet50", "resnet101")
AUDIO_ARCHS = ("cnn", "resnet50")
IMAGE_INPUTS = ("imagenet", "raw")
FEATURES = ("default", "paper")
RESIDENT_MODES = ("auto", "on", "off")
DEVICES = ("auto", "cuda", "cpu")
GPU_IMAGE_SIZE, GPU_AUDIO_WIDTH = 256, 32
CPU_IMAGE_SIZE, CPU_AUDIO_WIDTH = 128, 16


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run does; stored in the checkpoint so evaluation can rebuild it.

    Attributes:
        modality: ``both`` (fusion), ``image`` or ``audio``.
        image_arch: torchvision ResNet for the image branch.
        image_size: side of the square image the branch sees; None: 256 (the paper) on CUDA, 128 on CPU.
        audio_width: channels of the audio CNN's first stage (doubled per stage; 4 stages); None: 32 on CUDA,
            16 on CPU. CPU is the fallback for tests and small runs, so its defaults trade accuracy for time.
        epochs: maximum number of epochs.
        batch_size: the *global* batch: under torchrun each of N ranks takes 1/N of every batch, so one run
            sees the same batches whatever the number of processes.
        lr: Adam learning rate (the paper: 1e-5 with pretrained branches; higher from scratch).
        weight_decay: Adam weight decay (the paper: 1e-4).
        patience: stop after this many epochs without a better validation weighted F1.
        seed: seeds model initialisation and the batch order.
        split_seed: seed of the computed 70/10/20 split for a release without metadata.csv.
        device: ``auto`` (CUDA when present), ``cuda`` or ``cpu``.
        workers: DataLoader worker processes; None picks a default for the device.
        use_cache: decode images and log-mels once into a memory-mapped feature cache.
        bf16: bf16 autocast on CUDA (ignored on CPU).
        limit: keep at most this many samples per split (quick runs); None keeps all.
        image_weights: local state dict for the image backbone (e.g. ImageNet weights); nothing is downloaded.
        audio_weights: the audio branch's weights: this project's checkpoint.pt, or a state dict with the
            authors' ResNet-50 parameter names (``audio_arch="resnet50"``).
        preset: the preset the run started from (``small`` or ``paper``); informational, flags override it.
        audio_arch: ``cnn`` (the small ResNet-style CNN) or ``resnet50`` (the authors' 1-channel ResNet-50).
        image_input: what the image branch is fed: ``imagenet`` (ImageNet mean/std normalised) or ``raw``
            (0–255 RGB, as the authors fed their AID-pretrained ResNet-101). Stored with the weights.
        features: ``default`` (our log-mel, SPEC §9) or ``paper`` (the authors' log-mel, see
            :func:`model.features.paper_log_mel`).
        lr_milestones: epochs after which the learning rate is multiplied by `lr_gamma` (empty: constant).
        lr_gamma: the factor of each step of the schedule.
        augment: flip, brightness and colour augmentation of training images (see :mod:`model.augment`).
        resident: keep the cached features on the device: ``auto`` (when they fit), ``on`` or ``off``.
        head_dim: the fusion head's input size, recorded once the model is built (informational).
    """

    modality: str = Modality.BOTH.value
    image_arch: str = "resnet18"
    image_size: int | None = None
    audio_width: int | None = None
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 1e-4
    patience: int = 5
    seed: int = 0
    split_seed: int = 0
    device: str = "auto"
    workers: int | None = None
    use_cache: bool = True
    bf16: bool = True
    limit: int | None = None
    image_weights: str | None = None
    audio_weights: str | None = None
    preset: str = "small"
    audio_arch: str = "cnn"
    image_input: str = "imagenet"
    features: str = "default"
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    augment: bool = False
    resident: str = "auto"
    head_dim: int | None = None

    def __post_init__(self) -> None:
        # A list (from JSON, a CLI or with_()) becomes the tuple the frozen dataclass promises.
        object.__setattr__(self, "lr_milestones", tuple(int(m) for m in self.lr_milestones))
        problems = []
        if self.modality not in {m.value for m in Modality}:
            problems.append(f"modality must be one of both|image|audio, not {self.modality!r}")
        if self.image_arch not in IMAGE_ARCHS:
            problems.append(f"image_arch must be one of {'|'.join(IMAGE_ARCHS)}, not {self.image_arch!r}")
        for name, choices in (
            ("device", DEVICES),
            ("audio_arch", AUDIO_ARCHS),
            ("image_input", IMAGE_INPUTS),
            ("features", FEATURES),
            ("resident", RESIDENT_MODES),
        ):
            if getattr(self, name) not in choices:
                problems.append(f"{name} must be one of {'|'.join(choices)}, not {getattr(self, name)!r}")
        milestones = list(self.lr_milestones)
        if any(m < 1 for m in milestones) or milestones != sorted(set(milestones)):
            problems.append(f"lr_milestones must be increasing positive epochs, not {milestones}")
        if self.lr_gamma <= 0:
            problems.append(f"lr_gamma must be positive, not {self.lr_gamma}")
        if self.image_size is not None and self.image_size < 32:
            problems.append(f"image_size must be at least 32 (ResNet downsamples 32×), not {self.image_size}")
        for name in ("epochs", "batch_size", "audio_width", "patience"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.lr <= 0:
            problems.append(f"lr must be positive, not {self.lr}")
        if self.workers is not None and self.workers < 0:
            problems.append(f"workers must be 0 or more, not {self.workers}")
        if self.limit is not None and self.limit < 1:
            problems.append(f"limit must be at least 1, not {self.limit}")
        if problems:
            raise TrainingError("; ".join(problems))

    def for_device(self, device_type: str) -> TrainConfig:
        """Fill the size defaults left open (None) for the device the run really uses."""
        gpu = device_type == "cuda"
        return replace(
            self,
            image_size=self.image_size or (GPU_IMAGE_SIZE if gpu else CPU_IMAGE_SIZE),
            audio_width=self.audio_width or (GPU_AUDIO_WIDTH if gpu else CPU_AUDIO_WIDTH),
        )

    @property
    def image_side(self) -> int:
        """`image_size` once :meth:`for_device` has filled it in (every checkpoint's config has it)."""
        if self.image_size is None:
            raise TrainingError("image_size is not set; resolve the config with for_device() first")
        return self.image_size

    @property
    def modality_enum(self) -> Modality:
        return Modality(self.modality)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, so a checkpoint loads with ``torch.load(weights_only=True)`` (tuples become lists)."""
        data = asdict(self)
        data["lr_milestones"] = list(self.lr_milestones)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys (from a newer version) are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "lr_milestones" in values:
            values["lr_milestones"] = tuple(int(m) for m in values["lr_milestones"])
        return cls(**values)

    def with_(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)
