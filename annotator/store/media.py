"""Where a pair's media live inside the media directory: one place for the two relative paths.

The store keeps these relative paths (never absolute ones), so a media directory can move with its database.
"""

from __future__ import annotations

CLIPS_DIR = "clips"
IMAGES_DIR = "images"


def clip_relpath(pair_id: int) -> str:
    """``clips/<pair>.wav``: the pair's 10 s clip, relative to the media directory."""
    return f"{CLIPS_DIR}/{pair_id}.wav"


def image_relpath(pair_id: int) -> str:
    """``images/<pair>.jpg``: the pair's aerial image, relative to the media directory."""
    return f"{IMAGES_DIR}/{pair_id}.jpg"
