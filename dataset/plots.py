"""The two figures of an export: ``statistics.png`` (class histogram) and ``samples.png`` (one pair per class).

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

from annotator.vocabulary import PairOrigin, SceneClass
from dataset.audio import resample

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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


def statistics_png(originals: Mapping[SceneClass, int], offsets: Mapping[SceneClass, int]) -> bytes:
    """A bar per class (index order) with the pair count above it, like the published ADVANCE figure.

    Offset pairs are drawn as a lighter segment on top of the originals, so the augmentation is visible.
    """
    classes = [c for c in SceneClass if originals.get(c, 0) + offsets.get(c, 0) > 0]
    fig = _figure(max(6.0, 0.8 * len(classes) + 1.5), 4.2)
    ax = fig.add_subplot()
    x = np.arange(len(classes))
    base = np.array([originals.get(c, 0) for c in classes])
    extra = np.array([offsets.get(c, 0) for c in classes])
    ax.bar(x, base, width=0.42, color=BAR_BLUE, label=PairOrigin.ORIGINAL.value, zorder=2)
    if extra.any():
        ax.bar(
            x,
            extra,
            bottom=base,
            width=0.42,
            color=BAR_LIGHT,
            edgecolor=BAR_BLUE,
            label=PairOrigin.OFFSET.value,
            zorder=2,
        )
        # Above the axes, so it never hides a bar or its count.
        ax.legend(frameon=False, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2)
    totals = base + extra
    top = max(int(totals.max()) if len(totals) else 1, 1)
    for xi, total in zip(x, totals, strict=True):
        ax.text(
            float(xi),
            float(total + top * 0.03),
            str(int(total)),
            ha="center",
            va="bottom",
            fontsize=11,
            color="#333333",
        )
    ax.set_xticks(x, [c.value for c in classes], rotation=45, ha="right", rotation_mode="anchor", fontsize=11)
    ax.set_ylabel("#pairs", fontsize=13)
    ax.set_ylim(0, top * 1.18)
    ax.grid(axis="y", color="#d9d9d9", zorder=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_color("#bfbfbf")
    ax.tick_params(axis="both", length=0, colors="#595959")
    fig.tight_layout()
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


def _draw_spectrogram(ax: Axes, wav_path: Path, sample_rate: int | None, with_time_axis: bool) -> None:
    samples, rate = soundfile.read(wav_path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if sample_rate is not None and sample_rate != rate:
        mono, rate = resample(mono, rate, sample_rate), sample_rate
    spec = log_spectrogram(mono, rate, n_fft=512, hop=512)
    duration = len(mono) / rate
    ax.imshow(
        spec,
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0.0, duration, 0.0, rate / 2000.0),
        vmin=float(spec.max()) - 80.0,
        vmax=float(spec.max()),
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


def samples_png(examples: Sequence[tuple[SceneClass, str, Path, Path]], sample_rate: int | None = None) -> bytes:
    """One row per class: the image and the log spectrogram of its clip.

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
        right=0.98,
        top=1 - 0.25 / height,
        bottom=0.35 / height,
        wspace=0.12,
        hspace=0.35,
    )
    for row, (cls, sample_id, image_path, wav_path) in enumerate(examples):
        _draw_thumbnail(fig.add_subplot(grid[row, 0]), image_path, f"{cls.value} — {sample_id}")
        _draw_spectrogram(fig.add_subplot(grid[row, 1]), wav_path, sample_rate, with_time_axis=row == rows - 1)
    return _png_bytes(fig)


def render_figures(
    originals: Mapping[str, int],
    offsets: Mapping[str, int],
    examples: Sequence[tuple[str, str, str, str]],
    sample_rate: int,
) -> tuple[bytes, bytes]:
    """(statistics.png, samples.png) bytes from plain values, so a pool worker can draw them.

    Args:
        originals, offsets: pair counts per class value.
        examples: (class value, sample id, image path, clip path) of one pair per class, in class order.
        sample_rate: the export's sample rate (the clips are shown as exported).
    """
    statistics = statistics_png(
        {SceneClass(c): n for c, n in originals.items()}, {SceneClass(c): n for c, n in offsets.items()}
    )
    rows = [(SceneClass(c), sample_id, Path(image), Path(clip)) for c, sample_id, image, clip in examples]
    return statistics, samples_png(rows, sample_rate)
