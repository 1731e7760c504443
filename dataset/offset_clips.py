"""Where the clips of offset pairs are cut: seeded 10 s windows that never repeat a sibling's (SPEC §8).

An offset pair gets a new clip of its parent's recording, drawn with a seed under its own key, at least
:data:`MIN_WINDOW_SEPARATION_S` away from the original's window and every other offset's. A recording too short
to leave room is treated as a loop, so four more distinct windows exist even for a 2 s recording. Pure numpy:
the caller reads the audio and writes the clips.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dataset.audio import CLIP_S, clip_window_start, loop_to_min_duration

#: Two clips of a recording count as "the same window" when their starts are closer than this.
MIN_WINDOW_SEPARATION_S = 0.25
#: A recording with less slack than this beyond one clip is treated as a loop, so windows can wrap around.
CIRCULAR_BELOW_SLACK_S = 2.0
#: Random draws before falling back to a fine grid of window starts.
MAX_DRAWS = 64
GRID_STEPS = 1025


def window_distance(a: float, b: float, period_s: float | None) -> float:
    """Distance between two window starts; around the loop when the audio is circular."""
    if period_s is None:
        return abs(a - b)
    d = abs(a - b) % period_s
    return min(d, period_s - d)


def draw_offset_window(
    span_s: float, seed: int, key: str, taken: Sequence[float], period_s: float | None, clip_s: float = CLIP_S
) -> float:
    """A seeded window start in ``[0, span_s - clip_s]`` at least MIN_WINDOW_SEPARATION_S from every `taken`.

    Draws with :func:`dataset.audio.clip_window_start` under `key`, re-drawing under ``key:redraw:n`` while it
    lands on a taken window; after 64 draws (only for very short recordings) the first free position of a
    fine grid is used, still deterministically.

    Raises:
        ValueError: no free window is left.
    """

    def free(start: float) -> bool:
        return all(window_distance(start, t, period_s) >= MIN_WINDOW_SEPARATION_S for t in taken)

    for attempt in range(MAX_DRAWS):
        start = clip_window_start(span_s, seed, key if attempt == 0 else f"{key}:redraw:{attempt}", clip_s)
        if free(start):
            return start
    room = max(span_s - clip_s, 0.0)
    for step in range(1, GRID_STEPS):
        start = room * step / GRID_STEPS
        if free(start):
            return start
    raise ValueError(f"no free 10 s window left in {span_s:.2f} s of audio for {key}")


def offset_clip_source(
    samples: np.ndarray, sample_rate: int, clip_s: float = CLIP_S
) -> tuple[np.ndarray, float | None]:
    """The audio offset windows are drawn from, and its loop period (None unless it wraps around).

    As at import, a recording shorter than a clip is looped. When that leaves less than
    CIRCULAR_BELOW_SLACK_S of room for the window to move, the recording is treated as a loop, so four more
    distinct windows exist even for a 2 s or an exactly-10 s recording.
    """
    looped = loop_to_min_duration(samples, sample_rate, min_s=clip_s)
    if len(looped) / sample_rate - clip_s >= CIRCULAR_BELOW_SLACK_S:
        return looped, None
    period = len(samples)
    repeats = -(-(period + round(clip_s * sample_rate) + 1) // period)
    return np.tile(samples, repeats), period / sample_rate


def stored_clip_as_loop(clip: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """A stored 10 s clip as a loop to cut offset windows from (the stand-in when the original is unusable).

    Returns:
        (the clip three times over, so any start in ``[0, period)`` has a full window after it; the period in s).
    """
    return np.tile(clip, 3), len(clip) / sample_rate


def window_span_s(audio: np.ndarray, sample_rate: int, period_s: float | None, clip_s: float = CLIP_S) -> float:
    """The span window starts are drawn over: the whole audio, or one loop period plus a clip when circular."""
    return len(audio) / sample_rate if period_s is None else period_s + clip_s
