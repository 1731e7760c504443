"""Benchmark the evidence overlays (issue 14): rendering time per 1,000 pairs, and `prelabel` with vs without them.

1. Rendering: N points spread over the Kotka 2019 extract (tests/osm/data) are decided with the real rule, so the
   overlays draw real OSM geometry (clipped and simplified as stored); each pair gets its own 512×512 JPEG file with
   seeded aerial-like texture. :func:`annotator.labelstudio.overlays.ensure_overlays` renders them all into a
   temporary media dir; a second call shows the cost of finding them already there (what `ls push` pays).
2. With ``--demo-db PATH --demo-media DIR`` (a store built by ``annotator demo`` + ``init`` + ``import``, see
   scripts/demo.sh): ``prelabel`` from the demo's OSM file twice with ``force``, without and with rendering.

Usage: .venv/bin/python bench/bench_overlays.py [--pairs 1000] [--seed 7]
       [--demo-db RUN/annotator.db --demo-media RUN/media --demo-osm RUN/corpus/demo.osm]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image, ImageFilter  # noqa: E402

from annotator.labelstudio.overlays import ensure_overlays  # noqa: E402
from annotator.osm.decide import DecisionOptions, FeatureIndex, decide  # noqa: E402
from annotator.osm.extract import load_extract  # noqa: E402
from annotator.store.models import OsmEvidence, Pair  # noqa: E402
from dataset.imagery.geo import footprint_bbox  # noqa: E402

KOTKA = ROOT / "tests" / "osm" / "data" / "kotka-2019.osm.pbf"
KOTKA_LAT, KOTKA_LON, EXTENT = 60.52, 26.93, (0.0195, 0.039)


def aerial_like(rng: np.random.Generator) -> Image.Image:
    """A 512×512 image with field-like patches and fine grain (JPEG cost close to a real crop's)."""
    coarse = rng.integers(40, 200, size=(16, 16, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((512, 512), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(3))
    grain = rng.normal(0, 12, size=(512, 512, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) + grain, 0, 255).astype(np.uint8))


def make_pairs(media: Path, n: int, seed: int) -> list[Pair]:
    """Transient pairs over Kotka with decided evidence (geometry kept) and an image each."""
    index = FeatureIndex(load_extract(KOTKA).features)
    rng, rand = np.random.default_rng(seed), random.Random(seed)
    (media / "images").mkdir(parents=True, exist_ok=True)
    textures = []
    for _ in range(8):  # a few textures, each pair its own file (the renderer reads one file per pair)
        buffer = io.BytesIO()
        aerial_like(rng).save(buffer, format="JPEG", quality=90)
        textures.append(buffer.getvalue())
    pairs = []
    for i in range(n):
        lat = KOTKA_LAT + rand.random() * EXTENT[0]
        lon = KOTKA_LON + rand.random() * EXTENT[1]
        footprint = footprint_bbox(lat, lon)
        decision = decide(lat, lon, footprint, index, DecisionOptions())
        pair = Pair(id=i + 1, lat=lat, lon=lon, image_path=f"images/{i + 1}.jpg", clip_path=f"clips/{i + 1}.wav")
        pair.footprint_west, pair.footprint_south, pair.footprint_east, pair.footprint_north = footprint
        pair.osm_evidence = OsmEvidence(
            id=i + 1,
            label=decision.label.value if decision.label else None,
            confidence=decision.confidence,
            elements=decision.elements,
            source="kotka",
        )
        (media / pair.image_path).write_bytes(textures[i % len(textures)])
        pairs.append(pair)
    return pairs


def bench_rendering(n: int, seed: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-overlays-") as tmp:
        media = Path(tmp)
        t0 = time.perf_counter()
        pairs = make_pairs(media, n, seed)
        print(f"made {n} pairs with real Kotka evidence and images in {time.perf_counter() - t0:.1f} s")
        shapes = [len(p.osm_evidence.elements) for p in pairs if p.osm_evidence is not None]
        vertices = [
            len(str(e.get("geometry"))) for p in pairs if p.osm_evidence is not None for e in p.osm_evidence.elements
        ]
        print(
            f"evidence: {statistics.mean(shapes):.1f} elements per pair, "
            f"{statistics.mean(vertices) if vertices else 0:.0f} chars of geometry per element (JSON-ish)"
        )
        for workers in (1, None):
            shutil.rmtree(media / "overlays", ignore_errors=True)
            report = ensure_overlays(media, pairs, workers=workers)
            sizes = [f.stat().st_size for f in (media / "overlays").glob("*.jpg")]
            threads = workers or f"default ({min(4, os.cpu_count() or 1)})"
            print(
                f"rendered {report.rendered} overlays on {threads} thread(s) in {report.seconds:.2f} s: "
                f"{report.per_thousand_s:.2f} s per 1,000 pairs, {statistics.mean(sizes) / 1024:.0f} KiB each"
            )
        again = ensure_overlays(media, pairs)
        print(f"second call (all on disk, as `ls push` finds them): {again.seconds * 1000:.1f} ms for {again.existing}")
        for pair in pairs:  # evidence of an older version: no geometry stored
            assert pair.osm_evidence is not None
            pair.osm_evidence.elements = [
                {k: v for k, v in e.items() if k != "geometry"} for e in pair.osm_evidence.elements
            ]
        shutil.rmtree(media / "overlays")
        old = ensure_overlays(media, pairs)
        print(f"old evidence (footprint and point only): {old.per_thousand_s:.2f} s per 1,000 pairs")


def bench_prelabel(db: Path, media: Path, osm: Path) -> None:
    from annotator.config import resolve_store
    from annotator.osm.prelabel import ExtractSource, prelabel_pairs
    from annotator.store import open_store
    from annotator.store.engine import unit_of_work

    with tempfile.TemporaryDirectory(prefix="bench-overlays-demo-") as tmp:
        copy = Path(tmp) / "annotator.db"
        shutil.copy(db, copy)  # the demo's own store is left as it was
        location = resolve_store(str(copy), media)
        engine = open_store(location)
        timings = {}
        for label, media_dir in (("without overlays", None), ("with overlays", media), ("without again", None)):
            if media_dir is not None:
                shutil.rmtree(media / "overlays", ignore_errors=True)
            t0 = time.perf_counter()
            with unit_of_work(engine) as work:
                report = prelabel_pairs(work, ExtractSource(osm), force=True, media_dir=media_dir)
            timings[label] = time.perf_counter() - t0
            extra = (
                f", {report.overlays_rendered} overlays in {report.overlay_seconds:.2f} s"
                if media_dir is not None
                else ""
            )
            print(f"prelabel {label}: {report.pairs_todo} pairs in {timings[label]:.2f} s{extra}")
        engine.dispose()
        base = min(timings["without overlays"], timings["without again"])
        print(f"prelabel with rendering costs {timings['with overlays'] - base:+.2f} s over {base:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--demo-db", type=Path)
    parser.add_argument("--demo-media", type=Path)
    parser.add_argument("--demo-osm", type=Path)
    args = parser.parse_args()
    bench_rendering(args.pairs, args.seed)
    if args.demo_db:
        if not (args.demo_media and args.demo_osm):
            parser.error("--demo-db needs --demo-media and --demo-osm")
        bench_prelabel(args.demo_db, args.demo_media, args.demo_osm)


if __name__ == "__main__":
    main()
