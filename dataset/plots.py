"""The two figures of an export: ``statistics.png`` (pairs per class and split, human-reviewed share per class)
and ``samples.png`` (one pair per class: image and spectrogram, with a dB colour bar).

Both are drawn with matplotlib's Agg backend at a fixed size and dpi, with PNG metadata stripped of the
software/version line, so the same inputs give the same bytes (a re-export must be byte-identical).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile
from PIL import Image

from annotator.vocabulary import SceneClass
from dataset.audio import resample

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

#: The bar colour of the published ADVANCE histogram (reference/adv_statistics.png), and a lighter tint of it.
BAR_BLUE = "#5b9bd5"
BAR_LIGHT = "#bdd7ee"
DPI = 100
#: No "Software: matplotlib version …" chunk: the bytes must not change with the matplotlib patch version.
PNG_METADATA = {"Software": None}


def _figure(width_in: float, height_in: float) -> Figure:
    from matplotlib.figure import Figure

    # A bare Figure (no pyplot) uses the Agg canvas and no global state; safe in any process.
    return Figure(figsize=(width_in, height_in), dpi=DPI)


def _png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata=PNG_METADATA)
    return buffer.getvalue()


#: One colour per split (train, val, test): the ADVANCE blue and two tints of it.
SPLIT_COLOURS = {"train": BAR_BLUE, "val": "#2e5f8a", "test": BAR_LIGHT}
HUMAN_GREEN = "#70ad47"


def _plain_axes(ax: Axes) -> None:
    ax.grid(axis="y", color="#d9d9d9", zorder=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_color("#bfbfbf")
    ax.tick_params(axis="both", length=0, colors="#595959")


def statistics_png(
    per_split: Mapping[SceneClass, Mapping[str, int]],
    human_share: Mapping[SceneClass, float],
    title: str,
) -> bytes:
    """Pairs per class, stacked by split, with the count above each bar; below, each class's human-reviewed share.

    Args:
        per_split: samples per split value (train, val, test) of each class drawn.
        human_share: the share (0–1) of each class's original pairs whose label a person gave.
        title: the figure's title (what was exported, how it was split).
    """
    classes = [c for c in SceneClass if sum(per_split.get(c, {}).values()) > 0]
    fig = _figure(max(6.5, 0.8 * len(classes) + 1.5), 5.6)
    grid = fig.add_gridspec(2, 1, height_ratios=(3.0, 1.0), hspace=0.08)
    ax = fig.add_subplot(grid[0])
    share_ax = fig.add_subplot(grid[1], sharex=ax)
    x = np.arange(len(classes))
    bottom = np.zeros(len(classes))
    for split, colour in SPLIT_COLOURS.items():
        heights = np.array([per_split.get(c, {}).get(split, 0) for c in classes], dtype=float)
        ax.bar(x, heights, bottom=bottom, width=0.42, color=colour, label=split, zorder=2)
        bottom += heights
    top = max(int(bottom.max()) if len(bottom) else 1, 1)
    for xi, total in zip(x, bottom, strict=True):
        ax.text(
            float(xi),
            float(total + top * 0.03),
            str(int(total)),
            ha="center",
            va="bottom",
            fontsize=10,
            color="#333333",
        )
    ax.set_ylabel("#pairs", fontsize=12)
    ax.set_ylim(0, top * 1.2)
    # Above the axes, so it never hides a bar or its count.
    ax.legend(frameon=False, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=3, fontsize=9)
    fig.text(0.01, 0.985, title, fontsize=11, ha="left", va="top", color="#222222")
    ax.tick_params(axis="x", labelbottom=False)
    _plain_axes(ax)
    shares = np.array([100.0 * human_share.get(c, 0.0) for c in classes])
    share_ax.bar(x, shares, width=0.42, color=HUMAN_GREEN, zorder=2)
    for xi, share in zip(x, shares, strict=True):
        share_ax.text(
            float(xi), float(share) + 4, f"{share:.0f}%", ha="center", va="bottom", fontsize=8, color="#333333"
        )
    share_ax.set_ylim(0, 130)
    share_ax.set_yticks([0, 50, 100])
    share_ax.set_ylabel("human-\nreviewed %", fontsize=8)
    share_ax.set_xticks(x, [c.value for c in classes], rotation=45, ha="right", rotation_mode="anchor", fontsize=10)
    _plain_axes(share_ax)
    fig.subplots_adjust(left=0.12, right=0.98, top=0.8, bottom=0.22)
    return _png_bytes(fig)


def log_spectrogram(samples: np.ndarray, sample_rate: int, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """Log-magnitude STFT (dB, frequency × time) with a Hann window; deterministic numpy only."""
    if len(samples) < n_fft:
        samples = np.pad(samples, (0, n_fft - len(samples)))
    window = np.hanning(n_fft).astype(np.float64)
    frames = 1 + (len(samples) - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    spectrum = np.abs(np.fft.rfft(samples[index].astype(np.float64) * window, axis=1))
    return (20.0 * np.log10(spectrum.T + 1e-6)).astype(np.float32)


def _draw_thumbnail(ax: Axes, image_path: Path, title: str) -> None:
    with Image.open(image_path) as image:
        # Shown about 1 inch wide: a 128 px thumbnail is all the figure can show, and keeps it fast and small.
        thumbnail = image.convert("RGB").resize((128, 128), Image.Resampling.BOX)
    ax.imshow(np.asarray(thumbnail), interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=8, loc="left")


#: The spectrograms' dB range below each clip's peak (the colour bar's span).
DB_RANGE = 80.0


def _draw_spectrogram(ax: Axes, wav_path: Path, sample_rate: int | None, with_time_axis: bool) -> AxesImage:
    samples, rate = soundfile.read(wav_path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if sample_rate is not None and sample_rate != rate:
        mono, rate = resample(mono, rate, sample_rate), sample_rate
    spec = log_spectrogram(mono, rate, n_fft=512, hop=512)
    spec = spec - float(spec.max())  # dB relative to the clip's peak, so one colour bar reads every row
    duration = len(mono) / rate
    image = ax.imshow(
        spec,
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0.0, duration, 0.0, rate / 2000.0),
        vmin=-DB_RANGE,
        vmax=0.0,
        interpolation="nearest",
    )
    # Few ticks: text layout is most of the drawing time, and the figure is drawn in every export.
    ax.set_yticks([0.0, round(rate / 4000.0, 1), round(rate / 2000.0, 1)])
    ax.set_ylabel("kHz", fontsize=7)
    ax.tick_params(labelsize=7)
    if with_time_axis:
        ax.set_xticks([0.0, duration / 2, duration])
        ax.set_xlabel("s", fontsize=8)
    else:
        ax.set_xticks([])
    return image


def samples_png(examples: Sequence[tuple[SceneClass, str, Path, Path]], sample_rate: int | None = None) -> bytes:
    """One row per class: the image and the log spectrogram of its clip, with a colour bar in dB re each clip's peak.

    Args:
        examples: (class, sample id, image path, audio path) for each class shown, in the order to draw them.
        sample_rate: resample the clips to this rate first (soxr), as the export does; None keeps their rate.
    """
    rows = max(len(examples), 1)
    height = 1.3 * rows + 0.4
    fig = _figure(7.0, height)
    # Fixed margins instead of tight_layout: one draw instead of two (the figure is drawn once per export).
    grid = fig.add_gridspec(
        rows,
        2,
        width_ratios=(1.0, 3.2),
        left=0.02,
        right=0.86,
        top=1 - 0.25 / height,
        bottom=0.35 / height,
        wspace=0.12,
        hspace=0.35,
    )
    image = None
    for row, (cls, sample_id, image_path, wav_path) in enumerate(examples):
        _draw_thumbnail(fig.add_subplot(grid[row, 0]), image_path, f"{cls.value} — {sample_id}")
        image = _draw_spectrogram(fig.add_subplot(grid[row, 1]), wav_path, sample_rate, with_time_axis=row == rows - 1)
    if image is not None:
        # One bar for all rows, at most 3 inches tall, centred on the right.
        bar_h = min(3.0, height - 0.6) / height
        cax = fig.add_axes((0.9, 0.5 - bar_h / 2, 0.025, bar_h))
        bar = fig.colorbar(image, cax=cax, ticks=[-DB_RANGE, -DB_RANGE * 0.5, 0.0])
        bar.set_label("dB re clip peak", fontsize=7)
        bar.ax.tick_params(labelsize=7)
    return _png_bytes(fig)


def render_samples_figure(examples: Sequence[tuple[str, str, str, str]], sample_rate: int) -> bytes:
    """samples.png bytes from plain values, so a pool worker can draw it.

    Args:
        examples: (class value, sample id, image path, clip path) of one pair per class, in class order.
        sample_rate: the export's sample rate (the clips are shown as exported).
    """
    rows = [(SceneClass(c), sample_id, Path(image), Path(clip)) for c, sample_id, image, clip in examples]
    return samples_png(rows, sample_rate)


def render_statistics(
    per_split: Mapping[str, Mapping[str, int]], human_share: Mapping[str, float], title: str
) -> bytes:
    """statistics.png bytes from plain values keyed by class value, so a pool worker can draw it."""
    return statistics_png(
        {SceneClass(c): n for c, n in per_split.items()}, {SceneClass(c): v for c, v in human_share.items()}, title
    )
