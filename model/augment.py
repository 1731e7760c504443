"""Training-time image augmentation on the device, after the feature cache (the authors' ``augment_image``).

Per sample: a horizontal flip with probability 0.5, then a brightness factor and a colour (saturation) factor,
each uniform in [0.7, 1.3] — PIL's ``ImageEnhance.Brightness`` (scale every channel) and ``ImageEnhance.Color``
(blend with the ITU-R 601-2 luma grey image), as the authors apply them to 0–255 RGB. Values are clipped to
0–255 after each factor as PIL does; uint8 input is rounded once at the end (PIL rounds after each step, a
difference of at most one level). All random numbers come from one generator, so a seed fixes the result.
"""

from __future__ import annotations

import torch

FLIP_PROBABILITY = 0.5
FACTOR_LOW, FACTOR_HIGH = 0.7, 1.3
#: PIL's RGB → L weights (ITU-R 601-2 luma), the grey image ``ImageEnhance.Color`` blends towards.
LUMA = (0.299, 0.587, 0.114)


def augment_images(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip, brightness and colour per sample of (N, 3, H, W) images on the 0–255 scale; same dtype and device.

    The three draws per sample are taken from `generator` on its own device (so a CPU generator serves CUDA
    images, and the same seed gives the same augmentation on every device), then moved to the images' device.
    """
    n = images.shape[0]
    draws = torch.rand((n, 3), generator=generator, device=generator.device).to(images.device)
    flip = (draws[:, 0] < FLIP_PROBABILITY).view(n, 1, 1, 1)
    brightness = (FACTOR_LOW + (FACTOR_HIGH - FACTOR_LOW) * draws[:, 1]).view(n, 1, 1, 1)
    colour = (FACTOR_LOW + (FACTOR_HIGH - FACTOR_LOW) * draws[:, 2]).view(n, 1, 1, 1)
    x = images.float()
    x = torch.where(flip, x.flip(-1), x)
    x = (x * brightness).clamp(0.0, 255.0)
    luma = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    grey = (x * luma).sum(dim=1, keepdim=True)  # (N, 1, H, W)
    x = (grey + colour * (x - grey)).clamp(0.0, 255.0)
    if images.dtype == torch.uint8:
        return x.round().to(torch.uint8)
    return x.to(images.dtype)
