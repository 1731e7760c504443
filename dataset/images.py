"""Images: validate, normalise to the 512×512 RGB square ADVANCE uses, and save as deterministic JPEG."""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from annotator.errors import BadImage
from annotator.files import atomic_path
from annotator.vocabulary import RejectReason

IMAGE_SIZE = 512
JPEG_QUALITY = 90


def open_image(path: Path) -> Image.Image:
    """Open and fully decode `path` with Pillow.

    Raises:
        BadImage: ``missing_image`` when there is no file, ``bad_image`` when Pillow cannot decode it.
    """
    path = Path(path)
    if not path.is_file():
        raise BadImage(RejectReason.MISSING_IMAGE, f"no image file at {path}")
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


def normalise_image(src: Path | Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """A `size`×`size` RGB image: the centred largest square of `src`, resized with Lanczos.

    Raises:
        BadImage: when `src` is a path that is missing or not an image.
    """
    img = src if isinstance(src, Image.Image) else open_image(Path(src))
    if img.mode in ("RGBA", "LA", "P", "PA"):
        # Transparent pixels become white rather than whatever colour happens to sit under the alpha.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    img = img.convert("RGB")
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
