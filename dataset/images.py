"""Images: validate, normalise to the 512×512 RGB square ADVANCE uses, and save as deterministic JPEG."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from annotator.errors import BadImage
from annotator.files import atomic_path
from annotator.vocabulary import RejectReason

IMAGE_SIZE = 512
JPEG_QUALITY = 90


def open_image(path: Path) -> Image.Image:
    """Open and fully decode `path` with Pillow.

    Raises:
        BadImage: ``missing_image`` when there is no file, ``unreadable_file`` when it cannot be read
            (permission denied, an I/O error), ``bad_image`` when Pillow cannot decode it.
    """
    path = Path(path)
    if not path.is_file():
        raise BadImage(RejectReason.MISSING_IMAGE, f"no image file at {path}")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise BadImage(RejectReason.UNREADABLE_FILE, f"cannot read {path}: {exc.strerror}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                return ImageOps.exif_transpose(img) or img
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise BadImage(RejectReason.BAD_IMAGE, f"{path.name} is not an image Pillow can read ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or malformed data inside a known format
        raise BadImage(RejectReason.BAD_IMAGE, f"{path.name} cannot be decoded ({exc})") from None


#: Modes whose pixels may be transparent (besides any mode with a ``transparency`` key, as a PNG tRNS chunk gives).
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA", "P")


def _high_depth_to_grey(img: Image.Image) -> Image.Image:
    """An 8-bit greyscale copy of a 16-bit, 32-bit integer or float greyscale image, scaled by its nominal range.

    Pillow's own ``convert("L")`` clips such pixels at 255, so a 16-bit photo turns white. Integer modes are
    16-bit data (``I;16*``, and ``I``, which older Pillow gives 16-bit PNG, TIFF and PGM files): 0–65535 maps
    onto 0–255. Float images are taken as 0–1 when no pixel exceeds 1, else as 0–255.
    """
    pixels = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        peak = float(np.nanmax(pixels)) if pixels.size else 0.0
        scale = 255.0 if peak <= 1.0 else 1.0
    else:
        scale = 255.0 / 65535.0
    grey = np.clip(np.nan_to_num(pixels * scale), 0.0, 255.0)
    return Image.fromarray(np.rint(grey).astype(np.uint8), "L")


def to_rgb(img: Image.Image) -> Image.Image:
    """`img` as 8-bit RGB with the colours it shows, whatever mode Pillow read it in.

    16-bit and float greyscale are scaled to 8 bits (not clipped); transparent pixels (alpha, a palette's or a
    tRNS transparent colour) become white rather than whatever colour sits under them; CMYK, YCbCr, LAB, HSV,
    palette and 1-bit images go through Pillow's conversions.

    Raises:
        BadImage: ``bad_image`` for a mode Pillow cannot convert to RGB.
    """
    try:
        if img.mode.startswith("I") or img.mode == "F":
            img = _high_depth_to_grey(img)
        if img.mode in _ALPHA_MODES or "transparency" in img.info:
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, rgba)
        return img.convert("RGB")
    except ValueError as exc:  # a mode Pillow has no conversion for
        raise BadImage(RejectReason.BAD_IMAGE, f"a {img.mode} image cannot be converted to RGB ({exc})") from None


def normalise_image(src: Path | Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """A `size`×`size` RGB image: the centred largest square of `src`, resized with Lanczos.

    Every mode Pillow reads is converted by :func:`to_rgb` first (16-bit greyscale scaled, not clipped).

    Raises:
        BadImage: when `src` is a path that is missing or not an image, or its mode cannot become RGB.
    """
    img = to_rgb(src if isinstance(src, Image.Image) else open_image(Path(src)))
    width, height = img.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = img.crop((left, top, left + side, top + side))
    if square.size != (size, size):
        square = square.resize((size, size), Image.Resampling.LANCZOS)
    return square


def save_jpeg(image: Image.Image, path: Path) -> None:
    """Save `image` as a JPEG atomically, with fixed settings and no metadata (same pixels → same bytes)."""
    with atomic_path(Path(path)) as tmp:
        image.convert("RGB").save(tmp, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False)
