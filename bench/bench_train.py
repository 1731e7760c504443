"""Training throughput by data path: samples/s and the share of step time spent waiting for data.

CPU (this machine; the small preset at 64 px so it finishes in minutes): decoding every epoch, the DataLoader
over the feature cache, and the cache resident in memory (batches gathered by index):
    .venv/bin/python bench/bench_train.py
GPU (a device machine; the paper preset: ResNet-101 + 1-channel ResNet-50, batch 64, 256 px, bf16, resident):
    .venv/bin/python bench/bench_train.py --gpu [--pairs-per-class 40] [--peak-tflops 989]
    also prints the model FLOPs of one training step (torch.utils.flop_counter.FlopCounterMode, forward and
    backward) and the achieved TFLOP/s as a share of the card's dense bf16 peak (goal: data wait ≤ 2 %, ≥ 40 %).

Without --dataset a seeded ADVANCE-layout dataset (tests/model/advance_generator.py) is generated in a temp
folder. Each mode trains for --epochs epochs; figures are from the last epoch (the first includes warm-up). The
cache is built before the cached runs and its build time reported separately.
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

from annotator.vocabulary import NUM_CLASSES  # noqa: E402
from dataset.split import Split  # noqa: E402
from model.cache import open_or_build_cache  # noqa: E402
from model.config import TrainConfig  # noqa: E402
from model.data import open_dataset  # noqa: E402
from model.networks import build_model  # noqa: E402
from model.presets import resolve_config  # noqa: E402
from model.resident import ResidentData  # noqa: E402
from model.train import TrainResult, train  # noqa: E402

Row = tuple[str, str, float, float, float]  # mode, data path, samples/s, data wait %, epoch seconds

#: Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by a substring of torch.cuda.get_device_name(); the first
#: match wins, so the more specific names come first. Override with --peak-tflops.
BF16_PEAK_TFLOPS = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("H800", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("RTX 4090", 165.0),
)


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
    parser.add_argument("--pairs-per-class", type=int, help="Recordings per class when generating [5; GPU 40].")
    parser.add_argument("--gpu", action="store_true", help="The paper preset on CUDA: batch 64, 256 px, bf16.")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, help="Loader workers [0; GPU 8].")
    parser.add_argument("--peak-tflops", type=float, help="The card's dense bf16 peak (default: from a table).")
    args = parser.parse_args()
    args.pairs_per_class = args.pairs_per_class or (40 if args.gpu else 5)
    args.workers = args.workers if args.workers is not None else (8 if args.gpu else 0)
    return args


def _config(args: argparse.Namespace) -> TrainConfig:
    common = {"epochs": args.epochs, "patience": args.epochs, "workers": args.workers, "seed": 0}
    if args.gpu:
        return resolve_config("paper", {**common, "device": "cuda", "batch_size": 64, "image_size": 256, "bf16": True})
    return resolve_config("small", {**common, "device": "cpu", "image_size": 64, "audio_width": 8, "batch_size": 16})


def _modes(gpu: bool) -> list[tuple[str, dict[str, object]]]:
    if gpu:
        return [("resident", {"resident": "on"})]
    return [
        ("decode every epoch", {"use_cache": False, "resident": "off"}),
        ("loader + cache", {"resident": "off"}),
        ("resident", {"resident": "on"}),
    ]


def _measure(dataset: Path, work: Path, config: TrainConfig, gpu: bool) -> tuple[float, list[Row], TrainResult]:
    """Build the cache (timed), then train once per data path.

    Returns:
        (cache build seconds, one row per mode, the last run's result).
    """
    index = open_dataset(dataset)
    start = time.perf_counter()
    side = config.image_size or 64
    open_or_build_cache(index, side, work / "cache", workers=os.cpu_count() or 1, features=config.features)
    build_s = time.perf_counter() - start
    rows: list[Row] = []
    for label, changes in _modes(gpu):
        run_config = config.with_(**changes)
        result = train(dataset, work / f"run-{len(rows)}", run_config, cache_dir=work / "cache", log=None)
        last = result.history[-1]
        rows.append((label, result.data_path, last["samples_per_s"], last["data_wait_pct"], last["seconds"]))
    return build_s, rows, result


def step_flops(config: TrainConfig, dataset: Path, cache_dir: Path) -> float:
    """Model FLOPs of one training step (forward + backward, one batch of the configured size) on CUDA, bf16."""
    from torch.utils.flop_counter import FlopCounterMode

    device = torch.device("cuda")
    config = config.for_device("cuda")
    model = build_model(config, NUM_CLASSES).to(device).to(memory_format=torch.channels_last)
    index = open_dataset(dataset)
    cache = open_or_build_cache(index, config.image_side, cache_dir, features=config.features)
    samples = index.split(Split.TRAIN)[: config.batch_size]
    batch = ResidentData.from_cache(cache, samples, config.image_side, device).batch(torch.arange(len(samples)))
    model.train()
    counter = FlopCounterMode(display=False)
    with counter, torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(image=batch["image"], audio=batch["audio"])
        torch.nn.functional.cross_entropy(logits.float(), batch["label"]).backward()
    return float(counter.get_total_flops()) * config.batch_size / max(len(samples), 1)


def _peak(args: argparse.Namespace, name: str) -> float | None:
    if args.peak_tflops:
        return float(args.peak_tflops)
    return next((peak for key, peak in BF16_PEAK_TFLOPS if key in name), None)


def _report(args: argparse.Namespace, pairs: int, build_s: float, rows: list[Row], result: TrainResult) -> None:
    device = torch.cuda.get_device_name(0) if args.gpu else "CPU"
    config = _config(args)
    print(
        f"device: {device} ({platform.processor() or platform.machine()}, torch threads "
        f"{torch.get_num_threads()}); {pairs} pairs, train split {result.dataset['used']['train']}"
    )
    print(
        f"config: preset {config.preset}, {config.image_arch} + audio {config.audio_arch} at {config.image_size}px, "
        f"batch {config.batch_size}, workers {args.workers}, bf16 {'on' if args.gpu else 'off (CPU)'}"
    )
    print(
        f"load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(other jobs share this machine: figures are noisy)"
    )
    print(f"cache build (all {pairs} pairs, decode + log-mel): {build_s:.1f} s")
    print(f"{'mode':<20} {'data path':<38} {'samples/s':>10} {'data wait':>10} {'epoch s':>8}")
    for label, path, rate, wait, seconds in rows:
        print(f"{label:<20} {path:<38} {rate:>10.1f} {wait:>9.2f}% {seconds:>8.1f}")


def _report_flops(args: argparse.Namespace, flops: float, samples_per_s: float, batch_size: int) -> None:
    name = torch.cuda.get_device_name(0)
    achieved = flops * samples_per_s / batch_size / 1e12
    peak = _peak(args, name)
    share = f"{100 * achieved / peak:.1f} % of {peak:.0f} TFLOP/s bf16 peak" if peak else "peak unknown: --peak-tflops"
    print(f"model FLOPs per training step (batch {batch_size}, fwd + bwd): {flops / 1e12:.3f} TFLOP")
    print(f"achieved: {achieved:.1f} TFLOP/s ({share})")


def main() -> None:
    args = _parse_args()
    if args.gpu and not torch.cuda.is_available():
        sys.exit("--gpu needs a CUDA device")
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        dataset = args.dataset
        if dataset is None:
            dataset = work / "dataset"
            generated = _generator().write_export(dataset, per_class=args.pairs_per_class, offsets_every=2, seed=1)
            print(f"generated {len(generated)} pairs (512×512 JPEG, 10 s 22.05 kHz WAV) in {dataset}")
        config = _config(args)
        build_s, rows, result = _measure(dataset, work, config, args.gpu)
        pairs = sum(result.dataset["per_split"].values())
        _report(args, pairs, build_s, rows, result)
        if args.gpu:
            _report_flops(args, step_flops(config, dataset, work / "cache"), rows[-1][2], config.batch_size)


if __name__ == "__main__":
    main()
