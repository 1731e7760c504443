"""The presets, the paper's networks and input normalisation, and the training-time image augmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from annotator.errors import TrainingError
from annotator.vocabulary import NUM_CLASSES
from model.augment import augment_images
from model.config import TrainConfig
from model.networks import AudioResNet50, FusionNet, ImageBranch, build_model
from model.presets import PRESETS, resolve_config


def test_small_preset_is_todays_defaults() -> None:
    assert resolve_config("small", {}) == TrainConfig()


def test_paper_preset_is_the_authors_protocol() -> None:
    config = resolve_config("paper", {})
    assert (config.image_arch, config.audio_arch, config.features) == ("resnet101", "resnet50", "paper")
    assert (config.lr, config.weight_decay, config.batch_size) == (1e-5, 1e-4, 64)
    assert (config.lr_milestones, config.lr_gamma, config.augment, config.image_size) == ((30, 60, 90), 0.1, True, 256)
    assert config.preset == "paper"


def test_flags_override_the_preset_and_none_does_not() -> None:
    config = resolve_config("paper", {"lr": 3e-4, "batch_size": None, "image_size": 64, "lr_milestones": [5]})
    assert (config.lr, config.batch_size, config.image_size, config.lr_milestones) == (3e-4, 64, 64, (5,))


def test_unknown_preset_names_the_choices() -> None:
    with pytest.raises(TrainingError, match="small, paper"):
        resolve_config("huge", {})
    assert set(PRESETS) == {"small", "paper"}


def test_config_round_trips_through_json_with_its_tuples() -> None:
    config = resolve_config("paper", {"head_dim": 4096})
    data = json.loads(json.dumps(config.to_dict()))
    assert data["lr_milestones"] == [30, 60, 90]
    assert TrainConfig.from_dict(data) == config


@pytest.mark.parametrize(
    ("field", "value"),
    [("audio_arch", "vgg"), ("image_input", "bgr"), ("features", "mfcc"), ("resident", "maybe"), ("lr_gamma", 0.0)],
)
def test_config_refuses_unknown_choices(field: str, value: object) -> None:
    with pytest.raises(TrainingError, match=field):
        TrainConfig(**{field: value})  # type: ignore[arg-type]


def test_config_refuses_unordered_milestones() -> None:
    with pytest.raises(TrainingError, match="lr_milestones"):
        TrainConfig(lr_milestones=(60, 30))


def test_paper_model_at_64_px_has_the_4096_to_13_head() -> None:
    config = resolve_config("paper", {"image_size": 64, "device": "cpu"}).for_device("cpu")
    torch.manual_seed(0)
    model = build_model(config, NUM_CLASSES)
    assert isinstance(model.audio, AudioResNet50) and isinstance(model.image, ImageBranch)
    assert (model.head.in_features, model.head.out_features) == (4096, 13)
    model.eval()
    with torch.no_grad():
        image = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
        logits = model(image=image, audio=torch.randn(1, 1, 64, 400).half())
    assert logits.shape == (1, NUM_CLASSES)


def test_audio_resnet50_has_the_authors_stem_layout_and_names() -> None:
    branch = AudioResNet50()
    state = branch.state_dict()
    assert state["conv1.weight"].shape == (64, 1, 7, 7) and branch.conv1.stride == (1, 1)
    assert [len(getattr(branch, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    assert "layer4.2.bn3.running_var" in state and "layer1.0.downsample.0.weight" in state
    assert not any(k.startswith("fc.") for k in state) and branch.out_features == 2048
    with torch.no_grad():
        branch.eval()
        assert branch(torch.randn(1, 1, 64, 400)).shape == (1, 2048)


def test_image_input_normalisation_lives_in_the_model() -> None:
    raw = FusionNet(None, AudioResNet50(), NUM_CLASSES, image_input="raw")
    assert torch.equal(raw.image_mean, torch.zeros(1, 3, 1, 1)) and torch.equal(raw.image_std, torch.ones(1, 3, 1, 1))
    imagenet = FusionNet(None, AudioResNet50(), NUM_CLASSES)
    assert imagenet.image_mean.flatten().tolist() == pytest.approx([0.485 * 255, 0.456 * 255, 0.406 * 255])
    assert "image_mean" in raw.state_dict()  # travels with the weights in the checkpoint


def test_paper_features_use_one_global_audio_normaliser() -> None:
    """Per-bin statistics pooled exactly: the global mean/std of data whose bins differ."""
    data = torch.randn(64, 400, dtype=torch.float64) * torch.linspace(1, 3, 64)[:, None] + torch.arange(64)[:, None]
    model = FusionNet(None, AudioResNet50(), NUM_CLASSES, audio_norm="global")
    model.set_audio_stats(data.mean(dim=1).float(), data.std(dim=1, unbiased=False).float())
    assert torch.allclose(model.audio_mean, torch.full((1, 1, 64, 1), data.mean().item()))
    assert torch.allclose(model.audio_std, torch.full((1, 1, 64, 1), data.std(unbiased=False).item()))


# ------------------------------------------------------------------------------------------------ augmentation


def _images(n: int = 6, size: int = 16) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def test_augmentation_is_seeded_and_keeps_dtype_and_shape() -> None:
    images = _images()
    first = augment_images(images, torch.Generator().manual_seed(7))
    again = augment_images(images, torch.Generator().manual_seed(7))
    other = augment_images(images, torch.Generator().manual_seed(8))
    assert first.dtype == torch.uint8 and first.shape == images.shape
    assert torch.equal(first, again) and not torch.equal(first, other)
    as_float = augment_images(images.float(), torch.Generator().manual_seed(7))
    assert as_float.dtype == torch.float32 and (as_float - first.float()).abs().max() <= 0.5


def test_augmentation_matches_pil_image_enhance() -> None:
    """The same flip and factors through PIL (the authors' augment_image) agree within two grey levels."""
    images = _images(8, 12)
    out = augment_images(images, torch.Generator().manual_seed(3))
    draws = torch.rand((8, 3), generator=torch.Generator().manual_seed(3))
    flipped = 0
    for i in range(8):
        pil = Image.fromarray(images[i].permute(1, 2, 0).numpy())
        if draws[i, 0] < 0.5:
            pil, flipped = pil.transpose(Image.Transpose.FLIP_LEFT_RIGHT), flipped + 1
        pil = ImageEnhance.Brightness(pil).enhance(0.7 + 0.6 * float(draws[i, 1]))
        pil = ImageEnhance.Color(pil).enhance(0.7 + 0.6 * float(draws[i, 2]))
        reference = np.asarray(pil).transpose(2, 0, 1).astype(int)
        assert np.abs(out[i].numpy().astype(int) - reference).max() <= 2
    assert 0 < flipped < 8  # both branches of the flip were exercised
