"""Pretrained weights for the two branches, loaded by name and refused with a clear sentence when they do not fit.

* Image: ``"imagenet"`` goes through torchvision's Weights API (``ResNet101_Weights.IMAGENET1K_V2`` and its
  siblings): downloaded once into the torch hub cache (``$TORCH_HOME/hub/checkpoints``), read from there after;
  offline, the error names the URL and the exact file to place. Any other spec is a local state dict
  (torchvision names, or the authors' AID ResNet-101 with its ``module.`` prefix); the classifier ``fc.*`` is
  dropped because the fusion head replaces it.
* Audio: this project's own ``checkpoint.pt`` (its audio branch is transferred) or a state dict with the
  authors' ResNet-50 names (``conv1``, ``bn1``, ``layer1``…``layer4``; their ``{"model": ...}`` wrapper and
  their AudioSet classifier ``fc.*`` are handled).

Files are read with ``torch.load(weights_only=True)``: opening weights never runs pickled code.
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import torch
from torch import nn

from annotator.errors import TrainingError

IMAGENET = "imagenet"
#: torchvision's ImageNet weights per image architecture (the best published ones: V2 where it exists).
IMAGENET_WEIGHTS = {
    "resnet18": ("ResNet18_Weights", "IMAGENET1K_V1"),
    "resnet50": ("ResNet50_Weights", "IMAGENET1K_V2"),
    "resnet101": ("ResNet101_Weights", "IMAGENET1K_V2"),
}
_CHECKPOINT_FORMAT_PREFIX = "annotator-fusion/"


class ImageBackbone(Protocol):
    """What :func:`load_image_weights` needs of an image branch (:class:`model.networks.ImageBranch`)."""

    arch: str
    net: nn.Module


def imagenet_weights(arch: str) -> Any:
    """The torchvision ``WeightsEnum`` member for `arch` (e.g. ``ResNet101_Weights.IMAGENET1K_V2``)."""
    import torchvision

    if arch not in IMAGENET_WEIGHTS:
        raise TrainingError(f"no ImageNet weights known for {arch!r}; expected one of {', '.join(IMAGENET_WEIGHTS)}")
    enum_name, member = IMAGENET_WEIGHTS[arch]
    return getattr(getattr(torchvision.models, enum_name), member)


def imagenet_cache_file(arch: str) -> Path:
    """Where torchvision keeps (and looks for) the ImageNet weights of `arch`: the torch hub cache."""
    name = os.path.basename(urlparse(imagenet_weights(arch).url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def load_image_weights(branch: ImageBackbone, spec: str) -> None:
    """Load ``"imagenet"`` (torchvision, cached download) or a local state dict at path `spec` into `branch`.

    Raises:
        TrainingError: offline without the cached file (naming where to put it), an unreadable file, or a
            state dict whose names or shapes do not fit the branch.
    """
    if spec == IMAGENET:
        state, source = _imagenet_state(branch.arch), f"the ImageNet weights of {branch.arch}"
    else:
        state, source = read_state_dict(Path(spec)), str(spec)
    state = {k.removeprefix("module.").removeprefix("net."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    load_strict(branch.net, state, source, f"{branch.arch} image")


def _imagenet_state(arch: str) -> dict[str, torch.Tensor]:
    weights, target = imagenet_weights(arch), imagenet_cache_file(arch)
    try:
        return weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except (urllib.error.URLError, OSError) as exc:  # URLError and socket errors are OSErrors; offline lands here
        reason = getattr(exc, "reason", None) or exc
        raise TrainingError(
            f"cannot download the ImageNet weights of {arch} from {weights.url} ({reason}); without a network, "
            f"fetch that file elsewhere and place it at {target}"
        ) from None
    except (RuntimeError, ValueError) as exc:  # a truncated or foreign file in the cache
        raise TrainingError(f"the cached ImageNet weights {target} are unreadable ({exc}); delete the file") from None


def load_audio_weights(branch: nn.Module, path: str | Path) -> None:
    """Load `branch`'s weights from this project's checkpoint.pt or a state dict with the branch's names.

    A checkpoint transfers its ``audio.*`` weights (and must have been trained with the same ``audio_arch``);
    any other file is a state dict, optionally wrapped as ``{"model": ...}`` or ``{"state_dict": ...}``
    (the authors' AudioSet ResNet-50 is saved as ``{"model": state_dict}``) with ``module.`` prefixes and the
    pretraining classifier ``fc.*`` dropped.
    """
    path = Path(path)
    payload = _read_payload(path)
    arch = getattr(branch, "arch", "?")
    if _is_checkpoint(payload):
        trained = str(payload.get("config", {}).get("audio_arch", "cnn"))
        if trained != arch:
            raise TrainingError(
                f"checkpoint {path} has a {trained} audio branch, not {arch}; pass --audio-arch {trained}"
            )
        state = {k.removeprefix("audio."): v for k, v in payload["model"].items() if k.startswith("audio.")}
        if not state:
            raise TrainingError(f"checkpoint {path} has no audio branch (it was trained without sound)")
    else:
        state = _unwrap_state_dict(payload, path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    load_strict(branch, state, str(path), f"{arch} audio")


def _read_payload(path: Path) -> Any:
    if not path.is_file():
        raise TrainingError(f"weights file {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a checkpoint
        raise TrainingError(f"cannot read weights {path}: {exc}") from exc


def _is_checkpoint(payload: Any) -> bool:
    return (
        isinstance(payload, dict)
        and str(payload.get("format", "")).startswith(_CHECKPOINT_FORMAT_PREFIX)
        and isinstance(payload.get("model"), dict)
    )


def _unwrap_state_dict(payload: Any, path: Path) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model"):
        if isinstance(payload, dict) and isinstance(payload.get(key), dict):
            payload = payload[key]
            break
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise TrainingError(f"weights file {path} does not hold a state dict")
    return payload


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from `path` (bare, or wrapped as ``{"state_dict": ...}`` / ``{"model": ...}``)."""
    return _unwrap_state_dict(_read_payload(path), path)


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str, what: str) -> None:
    """Load every parameter and buffer of `module` by name; any missing, unexpected or misshapen one is an error."""
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches are raised even when strict=False
        detail = str(exc).splitlines()[-1].strip()
        raise TrainingError(f"{source} does not fit the {what} branch: {detail}") from None
    if result.missing_keys or result.unexpected_keys:
        raise TrainingError(
            f"{source} does not fit the {what} branch: missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}"
        )
