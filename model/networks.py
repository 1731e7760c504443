"""The fusion classifier: an image ResNet, an audio network, concatenation, one linear layer.

Two audio branches: :class:`AudioBranch`, a small ResNet-style CNN (the ``small`` preset), and
:class:`AudioResNet50`, the authors' 1-channel ResNet-50 (the ``paper`` preset; with a ResNet-101 image branch
the head is Linear(2048 + 2048, 13)). Feature sizes are read from the branches themselves
(``branch.out_features``), never written as numbers.

Inputs arrive as the data pipeline delivers them — uint8 images, float16 log-mels in dB — and are normalised
here, on the device, by buffers that travel with the weights in the checkpoint: images with ImageNet statistics
(``image_input="imagenet"``) or not at all (``"raw"``: 0–255 RGB, what the authors' AID weights saw); audio
with per-mel-bin statistics of the training split, or one global mean/std as the authors did (``features="paper"``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from annotator.errors import TrainingError
from model.config import Modality, TrainConfig
from model.features import N_MELS
from model.weights import load_audio_weights, load_image_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageBranch(nn.Module):
    """A torchvision ResNet without its classifier: (B, 3, S, S) float → (B, out_features)."""

    def __init__(self, arch: str) -> None:
        super().__init__()
        import torchvision

        if arch not in ("resnet18", "resnet50", "resnet101"):
            raise TrainingError(f"unknown image architecture {arch!r}; expected resnet18, resnet50 or resnet101")
        self.arch = arch
        self.net = getattr(torchvision.models, arch)(weights=None)
        self.out_features: int = self.net.fc.in_features
        self.net.fc = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def load_backbone(self, path: Path) -> None:
        """Load a torchvision state dict (e.g. ImageNet weights saved with ``torch.save(model.state_dict())``).

        The checkpoint's own ``fc.*`` classifier is dropped: the fusion head replaces it.
        """
        load_image_weights(self, str(path))


class AudioBranch(nn.Module):
    """A ResNet-style CNN on the one-channel log-mel: (B, 1, 64, 400) → (B, out_features).

    A 3×3 stem with 2×2 max pooling, four stages of two basic residual blocks (width w, 2w, 4w, 8w; stride 2
    from stage two), global average pooling. ``out_features`` = 8w.
    """

    arch = "cnn"

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
        load_audio_weights(self, path)


class AudioResNet50(nn.Module):
    """The authors' audio branch (``resnet-audio/resnet_audio.py``): a 1-channel ResNet-50 → (B, 2048).

    Their stem — a 7×7 convolution from 1 channel with stride 1 (as their code has it), BatchNorm, ReLU, 3×3
    max pooling with stride 2 — then Bottleneck layers [3, 4, 6, 3] and global average pooling. The modules
    carry their names (``conv1``, ``bn1``, ``layer1``…``layer4``; torchvision's Bottleneck has theirs too), so
    their AudioSet state dict loads by name; their 527-class ``fc`` is not part of the branch.
    Input: (B, 1, 64, 400) mel × time like every log-mel here, transposed to their (B, 1, 400, 64).
    """

    arch = "resnet50"

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models.resnet import Bottleneck, ResNet

        net = ResNet(Bottleneck, [3, 4, 6, 3])  # torchvision's init (Kaiming fan-out, BN 1/0) is theirs too
        self.conv1 = nn.Conv2d(1, net.conv1.out_channels, kernel_size=7, stride=1, padding=3, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.bn1, self.relu, self.maxpool = net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.avgpool = net.avgpool
        self.out_features: int = net.fc.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(-1, -2)  # (B, 1, 64, 400) → (B, 1, 400, 64): the authors' time × mel layout
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, 200, 32)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 2048, 25, 4)
        return torch.flatten(self.avgpool(x), 1)  # (B, 2048)

    def load_backbone(self, path: Path) -> None:
        load_audio_weights(self, path)


class FusionNet(nn.Module):
    """Concatenate the pooled features of the branches in use, then one linear layer to the classes."""

    # Buffers registered in __init__ (declared for the type checker; nn.Module resolves them at run time).
    image_mean: torch.Tensor
    image_std: torch.Tensor
    audio_mean: torch.Tensor
    audio_std: torch.Tensor

    def __init__(
        self,
        image: ImageBranch | None,
        audio: AudioBranch | AudioResNet50 | None,
        num_classes: int,
        *,
        image_input: str = "imagenet",
        audio_norm: str = "per_bin",
    ) -> None:
        """`image_input`: ``imagenet`` or ``raw`` (see the module docstring); `audio_norm`: ``per_bin`` or
        ``global`` (one mean/std over every bin and frame, the authors' normaliser)."""
        super().__init__()
        if image is None and audio is None:
            raise TrainingError("the classifier needs at least one branch")
        if image_input not in ("imagenet", "raw"):
            raise TrainingError(f"image_input must be imagenet or raw, not {image_input!r}")
        if audio_norm not in ("per_bin", "global"):
            raise TrainingError(f"audio_norm must be per_bin or global, not {audio_norm!r}")
        self.image, self.audio = image, audio
        self.audio_norm = audio_norm
        in_features = (image.out_features if image else 0) + (audio.out_features if audio else 0)
        self.head = nn.Linear(in_features, num_classes)
        imagenet = image_input == "imagenet"
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0 if imagenet else torch.zeros(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0 if imagenet else torch.ones(1, 3, 1, 1)
        self.register_buffer("image_mean", mean)
        self.register_buffer("image_std", std)
        self.register_buffer("audio_mean", torch.zeros(1, 1, N_MELS, 1))
        self.register_buffer("audio_std", torch.ones(1, 1, N_MELS, 1))

    def set_audio_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-mel-bin mean/std (64,) from the training split (every bin sees the same number of frames).

        With ``audio_norm="global"`` they are pooled into one mean and std for all bins: the mean of the bin
        means, and the variance E[x²] − E[x]² from each bin's std² + mean².
        """
        mean, std = mean.double(), std.double()
        if self.audio_norm == "global":
            pooled = mean.mean()
            variance = (std.square() + mean.square()).mean() - pooled.square()
            mean, std = pooled.expand(N_MELS), variance.clamp_min(0).sqrt().expand(N_MELS)
        self.audio_mean.copy_(mean.float().view(1, 1, N_MELS, 1))
        self.audio_std.copy_(std.float().clamp_min(1e-5).view(1, 1, N_MELS, 1))

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
    """The network `config` describes, with pretrained branch weights loaded when given.

    ``audio_arch="resnet50"`` builds the authors' audio branch; with ``image_arch="resnet101"`` that is the paper's
    network, head Linear(4096, num_classes). The input normalisation (``image_input``, and the global audio
    normaliser of ``features="paper"``) is built into the model's buffers, so checkpoint + config reproduce it.
    """
    modality = config.modality_enum
    if (modality is Modality.IMAGE and config.audio_weights) or (modality is Modality.AUDIO and config.image_weights):
        raise TrainingError(f"--modality {modality.value} does not use the weights given for the other branch")
    if config.image_weights == "imagenet" and config.image_input != "imagenet":
        raise TrainingError("ImageNet weights expect ImageNet-normalised input; pass --image-input imagenet")
    image = ImageBranch(config.image_arch) if modality.uses_image else None
    audio = _audio_branch(config) if modality.uses_audio else None
    if image is not None and config.image_weights:
        load_image_weights(image, config.image_weights)
    if audio is not None and config.audio_weights:
        load_audio_weights(audio, config.audio_weights)
    audio_norm = "global" if config.features == "paper" else "per_bin"
    return FusionNet(image, audio, num_classes, image_input=config.image_input, audio_norm=audio_norm)


def _audio_branch(config: TrainConfig) -> AudioBranch | AudioResNet50:
    if config.audio_arch == "resnet50":
        return AudioResNet50()
    if config.audio_width is None:
        raise TrainingError("the config's audio_width is unresolved; call config.for_device(...) first")
    return AudioBranch(config.audio_width)
