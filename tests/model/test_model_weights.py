"""Pretrained weights: torchvision's ImageNet weights through the torch hub cache (no network in tests), local
state dicts, this project's checkpoint and the authors' ResNet-50 names for the audio branch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from annotator.errors import TrainingError
from annotator.vocabulary import CLASS_ORDER, NUM_CLASSES
from model.checkpoint import Checkpoint, save_checkpoint
from model.config import TrainConfig
from model.networks import AudioBranch, AudioResNet50, ImageBranch, build_model
from model.weights import imagenet_cache_file, load_audio_weights, load_image_weights


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch cache, and any download routed to a closed local port: no test ever reaches a network."""
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return home


def _same(a: torch.nn.Module, b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, b[k]) for k, v in a.state_dict().items())


def test_imagenet_weights_load_from_the_torch_hub_cache(torch_home: Path) -> None:
    torch.manual_seed(11)
    synthetic = torchvision.models.resnet18(weights=None).state_dict()  # ImageNet's names and shapes, fc included
    target = imagenet_cache_file("resnet18")
    assert target == torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    target.parent.mkdir(parents=True)
    torch.save(synthetic, target)
    branch = ImageBranch("resnet18")
    load_image_weights(branch, "imagenet")
    assert _same(branch.net, synthetic)


def test_imagenet_weights_offline_name_the_file_to_place(torch_home: Path) -> None:
    with pytest.raises(TrainingError) as caught:
        load_image_weights(ImageBranch("resnet18"), "imagenet")
    message = str(caught.value)
    assert str(torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "download.pytorch.org" in message and "\n" not in message


def test_local_image_state_dict_loads_by_name_and_a_wrong_one_is_refused(tmp_path: Path) -> None:
    source = ImageBranch("resnet18")
    wrapped = {f"module.{k}": v for k, v in source.net.state_dict().items()}  # as DataParallel saves it
    torch.save(wrapped, tmp_path / "aid.pt")
    branch = ImageBranch("resnet18")
    load_image_weights(branch, str(tmp_path / "aid.pt"))
    assert _same(branch.net, source.net.state_dict())
    with pytest.raises(TrainingError, match="does not fit the resnet50 image branch"):
        load_image_weights(ImageBranch("resnet50"), str(tmp_path / "aid.pt"))
    with pytest.raises(TrainingError, match="does not exist"):
        load_image_weights(branch, str(tmp_path / "missing.pt"))


def test_imagenet_weights_refuse_raw_input() -> None:
    config = TrainConfig(image_weights="imagenet", image_input="raw", audio_width=4)
    with pytest.raises(TrainingError, match="--image-input imagenet"):
        build_model(config, NUM_CLASSES)


def test_audio_weights_with_the_authors_resnet50_names(tmp_path: Path) -> None:
    """Their AudioSet checkpoint: ``{"model": state_dict}`` of a 1-channel ResNet-50 with a 527-class fc."""
    torch.manual_seed(2)
    theirs = torchvision.models.resnet50(weights=None, num_classes=527).state_dict()
    theirs["conv1.weight"] = torch.randn(64, 1, 7, 7)
    torch.save({"model": theirs}, tmp_path / "audioset.pt")
    branch = AudioResNet50()
    load_audio_weights(branch, tmp_path / "audioset.pt")
    assert _same(branch, theirs)
    config = TrainConfig(modality="audio", audio_arch="resnet50", audio_weights=str(tmp_path / "audioset.pt"))
    assert _same(build_model(config, NUM_CLASSES).audio, theirs)  # type: ignore[arg-type]


def test_audio_weights_from_this_projects_checkpoint(tmp_path: Path) -> None:
    config = TrainConfig(audio_width=4, image_size=32)
    trained = build_model(config, NUM_CLASSES)
    checkpoint = Checkpoint(
        config=config,
        model_state=trained.state_dict(),
        optimizer_state=None,
        classes=[c.value for c in CLASS_ORDER],
        audio_stats={},
        epoch=1,
    )
    save_checkpoint(tmp_path / "checkpoint.pt", checkpoint)
    branch = AudioBranch(4)
    load_audio_weights(branch, tmp_path / "checkpoint.pt")
    assert trained.audio is not None and _same(branch, trained.audio.state_dict())
    with pytest.raises(TrainingError, match="has a cnn audio branch, not resnet50"):
        load_audio_weights(AudioResNet50(), tmp_path / "checkpoint.pt")
    with pytest.raises(TrainingError, match="does not fit the cnn audio branch"):
        load_audio_weights(AudioBranch(8), tmp_path / "checkpoint.pt")


def test_audio_weights_from_an_image_only_checkpoint_are_refused(tmp_path: Path) -> None:
    config = TrainConfig(modality="image", image_size=32, audio_width=4)
    save_checkpoint(
        tmp_path / "checkpoint.pt",
        Checkpoint(config, build_model(config, NUM_CLASSES).state_dict(), None, [c.value for c in CLASS_ORDER], {}, 1),
    )
    with pytest.raises(TrainingError, match="no audio branch"):
        load_audio_weights(AudioBranch(4), tmp_path / "checkpoint.pt")
