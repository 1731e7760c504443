"""Training throughput with and without the feature cache: samples/s and the share of step time spent waiting
for data (the target on a GPU: data wait ≤ 10 % of step time).

CPU (this machine; small network so it finishes in minutes):
    .venv/bin/python bench/bench_train.py
GPU (the paper's configuration: batch 64, ResNet-101, 256×256, bf16 autocast, 8 workers):
    .venv/bin/python bench/bench_train.py --gpu --pairs-per-class 40

Without --dataset a seeded ADVANCE-layout dataset (tests/model/advance_generator.py) is generated in a temp
folder. Each mode trains for --epochs epochs; figures are from the last epoch (the first may include warm-up).
The cache is built before the cached run and its build time reported separately.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.cache import open_or_build_cache  # noqa: E402
from model.config import TrainConfig  # noqa: E402
from model.data import open_dataset  # noqa: E402
from model.train import TrainResult, train  # noqa: E402

Row = tuple[str, float, float, float]  # mode, samples/s, data wait %, epoch seconds


def _generator() -> ModuleType:
    """tests/model/advance_generator.py, loaded by path (tests/ is no package on sys.path)."""
    spec = importlib.util.spec_from_file_location("advance_generator", ROOT / "tests/model/advance_generator.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, help="An export or release folder (default: generate one).")
    parser.add_argument("--pairs-per-class", type=int, default=5, help="Recordings per class when generating.")
    parser.add_argument("--gpu", action="store_true", help="Batch 64, resnet101, 256 px, bf16 on CUDA, 8 workers.")
    parser.add_argument("--image-arch", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--audio-width", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.gpu:
        args.image_arch, args.image_size, args.audio_width, args.batch_size = "resnet101", 256, 32, 64
        args.device, args.workers = "cuda", 8
    return args


def _config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        image_arch=args.image_arch,
        image_size=args.image_size,
        audio_width=args.audio_width,
        batch_size=args.batch_size,
        epochs=args.epochs,
        patience=args.epochs,
        device=args.device,
        workers=args.workers,
        lr=1e-4,
        seed=0,
    )


def _measure(dataset: Path, work: Path, config: TrainConfig) -> tuple[float, float, list[Row], TrainResult]:
    """Build the cache (timed), then train once decoding every epoch and once from the cache.

    Returns:
        (cache build seconds, 1-minute load average after the build, one row per mode, the last run's result).
    """
    index = open_dataset(dataset)
    start = time.perf_counter()
    open_or_build_cache(index, config.image_side, work / "cache", workers=config.workers or 0)
    build_s = time.perf_counter() - start
    load_before = os.getloadavg()[0]
    rows: list[Row] = []
    for label, use_cache in (("decode every epoch", False), ("feature cache", True)):
        result = train(
            dataset, work / f"run-{use_cache}", config.with_(use_cache=use_cache), cache_dir=work / "cache", log=None
        )
        last = result.history[-1]
        rows.append((label, last["samples_per_s"], 100 * last["data_wait"], last["seconds"]))
    return build_s, load_before, rows, result


def _report(
    args: argparse.Namespace, pairs: int, build_s: float, rows: list[Row], result: TrainResult, load_before: float
) -> None:
    device = torch.cuda.get_device_name(0) if args.device != "cpu" and torch.cuda.is_available() else "CPU"
    print(
        f"device: {device} ({platform.processor() or platform.machine()}, torch threads "
        f"{torch.get_num_threads()}); {pairs} pairs, train split {result.dataset['used']['train']}"
    )
    print(
        f"config: {args.image_arch} at {args.image_size}px, audio width {args.audio_width}, batch "
        f"{args.batch_size}, workers {args.workers}, bf16 {'on' if device != 'CPU' else 'off (CPU)'}"
    )
    print(
        f"load average (1 min) before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(other jobs share this machine: figures are noisy)"
    )
    print(f"cache build (all {pairs} pairs, decode + log-mel): {build_s:.1f} s")
    print(f"{'mode':<20} {'samples/s':>10} {'data wait':>10} {'epoch s':>8}")
    for label, rate, wait, seconds in rows:
        print(f"{label:<20} {rate:>10.1f} {wait:>9.1f}% {seconds:>8.1f}")


def main() -> None:
    args = _parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        dataset = args.dataset
        if dataset is None:
            dataset = work / "dataset"
            generated = _generator().write_export(dataset, per_class=args.pairs_per_class, offsets_every=2, seed=1)
            print(f"generated {len(generated)} pairs (512×512 JPEG, 10 s 22.05 kHz WAV) in {dataset}")
        build_s, load_before, rows, result = _measure(dataset, work, _config(args))
        pairs = sum(result.dataset["per_split"].values())
    _report(args, pairs, build_s, rows, result, load_before)


if __name__ == "__main__":
    main()
