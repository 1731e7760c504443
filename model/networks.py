"""The fusion classifier: an image ResNet, an audio ResNet-style CNN, concatenation, one linear layer.

Feature sizes are read from the branches themselves (``branch.out_features``), never written as numbers.
Inputs arrive as the data pipeline delivers them — uint8 images, float16 log-mels in dB — and are normalised
here, on the device: ImageNet statistics for images, per-mel-bin statistics of the training split for audio
(buffers, so they travel with the weights in the checkpoint).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from annotator.errors import TrainingError
from model.config import Modality, TrainConfig
from model.features import N_MELS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageBranch(nn.Module):
    """A torchvision ResNet without its classifier: (B, 3, S, S) float → (B, out_features)."""

    def __init__(self, arch: str) -> None:
        super().__init__()
        import torchvision

        if arch not in ("resnet18", "resnet50", "resnet101"):
            raise TrainingError(f"unknown image architecture {arch!r}; expected resnet18, resnet50 or resnet101")
        self.net = getattr(torchvision.models, arch)(weights=None)
        self.out_features: int = self.net.fc.in_features
        self.net.fc = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def load_backbone(self, path: Path) -> None:
        """Load a torchvision state dict (e.g. ImageNet weights saved with ``torch.save(model.state_dict())``).

        The checkpoint's own ``fc.*`` classifier is dropped: the fusion head replaces it.
        """
        state = _read_state_dict(path)
        state = {k.removeprefix("module.").removeprefix("net."): v for k, v in state.items()}
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        _load_strict(self.net, state, path, "image")


class AudioBranch(nn.Module):
    """A ResNet-style CNN on the one-channel log-mel: (B, 1, 64, 400) → (B, out_features).

    A 3×3 stem with 2×2 max pooling, four stages of two basic residual blocks (width w, 2w, 4w, 8w; stride 2
    from stage two), global average pooling. ``out_features`` = 8w.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        from torchvision.models.resnet import BasicBlock

        def stage(c_in: int, c_out: int, stride: int) -> nn.Sequential:
            down = None
            if stride != 1 or c_in != c_out:
                down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            return nn.Sequential(BasicBlock(c_in, c_out, stride, down), BasicBlock(c_out, c_out))

        widths = [width, 2 * width, 4 * width, 8 * width]
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # (B, w, 32, 200): halving early keeps the full-resolution convolutions cheap
        )
        self.stages = nn.Sequential(
            *(stage(widths[max(i - 1, 0)], w, 1 if i == 0 else 2) for i, w in enumerate(widths))
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_features: int = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))  # (B, 8w, 64/16, 400/16)
        return torch.flatten(self.pool(x), 1)  # (B, 8w)

    def load_backbone(self, path: Path) -> None:
        state = {k.removeprefix("module."): v for k, v in _read_state_dict(path).items()}
        _load_strict(self, state, path, "audio")


class FusionNet(nn.Module):
    """Concatenate the pooled features of the branches in use, then one linear layer to the classes."""

    # Buffers registered in __init__ (declared for the type checker; nn.Module resolves them at run time).
    image_mean: torch.Tensor
    image_std: torch.Tensor
    audio_mean: torch.Tensor
    audio_std: torch.Tensor

    def __init__(self, image: ImageBranch | None, audio: AudioBranch | None, num_classes: int) -> None:
        super().__init__()
        if image is None and audio is None:
            raise TrainingError("the classifier needs at least one branch")
        self.image, self.audio = image, audio
        in_features = (image.out_features if image else 0) + (audio.out_features if audio else 0)
        self.head = nn.Linear(in_features, num_classes)
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("audio_mean", torch.zeros(1, 1, N_MELS, 1))
        self.register_buffer("audio_std", torch.ones(1, 1, N_MELS, 1))

    def set_audio_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-mel-bin mean/std (64,) from the training split."""
        self.audio_mean.copy_(mean.view(1, 1, N_MELS, 1))
        self.audio_std.copy_(std.clamp_min(1e-5).view(1, 1, N_MELS, 1))

    def forward(self, image: torch.Tensor | None = None, audio: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, classes) from uint8 images (B, 3, S, S) and/or dB log-mels (B, 1, 64, 400)."""
        features = []
        if self.image is not None:
            if image is None:
                raise TrainingError("this model uses images but the batch has none")
            x = (image.float() - self.image_mean) / self.image_std
            features.append(self.image(x.contiguous(memory_format=_memory_format(image))))
        if self.audio is not None:
            if audio is None:
                raise TrainingError("this model uses sound but the batch has none")
            features.append(self.audio((audio.float() - self.audio_mean) / self.audio_std))
        return self.head(torch.cat(features, dim=1))


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_cuda else torch.contiguous_format


def build_model(config: TrainConfig, num_classes: int) -> FusionNet:
    """The network `config` describes, with local backbone weights loaded when given."""
    modality = config.modality_enum
    if config.audio_width is None:
        raise TrainingError("the config's audio_width is unresolved; call config.for_device(...) first")
    image = ImageBranch(config.image_arch) if modality.uses_image else None
    audio = AudioBranch(config.audio_width) if modality.uses_audio else None
    if image is not None and config.image_weights:
        image.load_backbone(Path(config.image_weights))
    if audio is not None and config.audio_weights:
        audio.load_backbone(Path(config.audio_weights))
    if modality is not Modality.BOTH and (
        (modality is Modality.IMAGE and config.audio_weights) or (modality is Modality.AUDIO and config.image_weights)
    ):
        raise TrainingError(f"--modality {modality.value} does not use the weights given for the other branch")
    return FusionNet(image, audio, num_classes)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise TrainingError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a checkpoint
        raise TrainingError(f"cannot read weights {path}: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise TrainingError(f"weights file {path} does not hold a state dict")
    return state


def _load_strict(module: nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> None:
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches are raised even when strict=False
        raise TrainingError(f"{path} does not fit the {what} branch: {str(exc).splitlines()[-1].strip()}") from exc
    if result.missing_keys or result.unexpected_keys:
        raise TrainingError(
            f"{path} does not fit the {what} branch: missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}"
        )
