"""Finding stale labels first: recall of stale OSM labels in the first 20 % of the review queue (issue 13).

Plants two corpora as real stores (bench/rank_corpus.py) and runs the real `annotator rank` on each:

* **advance** — shaped like ADVANCE: 13 classes in the paper's proportions, --pairs pairs (1,000), --stale of
  the OSM labels stale (0.2). Orderings compared: the rank (`annotator rank`, small preset, this CPU), OSM
  confidence (today's queue: Label Studio's uncertainty sampling over the OSM predictions, lowest confidence
  first, ties in task = pair id order), the age of the deciding OSM edit (oldest first), random (expected
  k / N), the logistic-regression baseline below, and the rank's suspicion mixed with OSM's own evidence
  (``annotator.rank.combine_suspicion`` of ``osm_staleness``: confidence, coverage, edit age) at each
  --osm-weights weight.
* **calibration** — the issue's baseline corpus: 5 land-cover classes × 40 pairs, 20 % stale, one colour and one
  tone per true class with noise. A logistic regression on the mean image colour and five octave-band energies
  (125 Hz–4 kHz), 4-fold out-of-fold probabilities (stratified by the OSM label), self-confidence ranking:
  both, image only, sound only (seed 0, and the mean over --baseline-seeds seeds); and `annotator rank` with its
  default settings.

Reported per ordering: recall@20 % (stale labels among the first 20 % of the queue / all stale labels) and the
average precision of the whole ordering as a detector of stale labels; for suspicion scores also the count and
precision of the pairs flagged (suspicion ≥ 0.5); for the rank, seconds per fold and in all (wall, and the CPU
seconds of the process: the machine is shared, so wall time varies with its load). Measured on an idle 2-core
machine: the whole benchmark ~11 min (the advance rank ~6.5 min); on a machine busy with other work, 2–3× that.

    .venv/bin/python bench/bench_rank.py                      # both corpora, ~11 min on 2 idle cores
    .venv/bin/python bench/bench_rank.py --only calibration   # ~3 min
    .venv/bin/python bench/bench_rank.py --pairs 300 --json   # a quicker advance corpus, JSON out
    .venv/bin/python bench/bench_rank.py --gpu                # on a CUDA machine: + the paper preset (resident)
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from annotator.config import resolve_store  # noqa: E402
from bench.rank_corpus import (  # noqa: E402
    TRUTH_FILE,
    CorpusSpec,
    PlantedCorpus,
    advance_spec,
    calibration_spec,
    read_corpus,
    write_corpus,
)

QUEUE_SHARE = 0.2
BASELINE_BANDS_HZ = ((125, 250), (250, 500), (500, 1000), (1000, 2000), (2000, 4000))
BASELINE_FOLDS = 4
DEFAULT_OSM_WEIGHTS = (0.1, 0.2, 0.3, 0.5, 1.0)


@dataclass
class Row:
    """One line of the table: an ordering of one corpus and how well it finds the stale labels."""

    corpus: str
    ordering: str
    recall_at_20: float
    average_precision: float | None = None  # of the whole ordering as a detector of stale labels
    flagged: int | None = None  # pairs with suspicion ≥ 0.5 (scores in [0, 1] only)
    precision_flagged: float | None = None
    seconds: float | None = None
    cpu_seconds: float | None = None
    seconds_per_fold: list[float] | None = None
    note: str = ""


# ------------------------------------------------------------------------------------------ measures


def queue_length(n: int, share: float = QUEUE_SHARE) -> int:
    """How many pairs are "the first `share` of the queue" (rounded up)."""
    return math.ceil(share * n - 1e-9)


def recall_at(order: list[int], stale: set[int], share: float = QUEUE_SHARE) -> float:
    """Share of the stale pairs among the first `share` of `order` (pair ids, first served first)."""
    head = order[: queue_length(len(order), share)]
    return sum(p in stale for p in head) / max(len(stale), 1)


def order_by(scores: dict[int, float], *, descending: bool) -> list[int]:
    """Pair ids by score (ties by pair id, as the queue breaks them)."""
    sign = -1.0 if descending else 1.0
    return sorted(scores, key=lambda p: (sign * scores[p], p))


def flag_stats(suspicion: dict[int, float], stale: set[int]) -> tuple[int, float | None]:
    flagged = [p for p, s in suspicion.items() if s >= 0.5]
    return len(flagged), (sum(p in stale for p in flagged) / len(flagged)) if flagged else None


def average_precision(order: list[int], stale: set[int]) -> float:
    """Mean over the stale pairs of the share of stale pairs up to and including each (area under the PR curve)."""
    found, total = 0, 0.0
    for position, pair in enumerate(order, start=1):
        if pair in stale:
            found += 1
            total += found / position
    return total / max(len(stale), 1)


def order_row(corpus: str, ordering: str, order: list[int], stale: set[int]) -> Row:
    """A row for an ordering without scores in [0, 1] (nothing is flagged)."""
    return Row(corpus, ordering, recall_at(order, stale), average_precision(order, stale))


def score_row(corpus: str, ordering: str, suspicion: dict[int, float], stale: set[int], **extra: Any) -> Row:
    flagged, precision = flag_stats(suspicion, stale)
    order = order_by(suspicion, descending=True)
    return Row(corpus, ordering, recall_at(order, stale), average_precision(order, stale), flagged, precision, **extra)


# ------------------------------------------------------------------------------------------ baselines


def pair_features(planted: PlantedCorpus) -> tuple[list[int], np.ndarray]:
    """Per pair (store order): mean image colour (3) and log energies of five octave bands (5), from the files."""
    import soundfile
    from PIL import Image

    ids, rows = [], []
    for p in planted.pairs:
        assert p.pair_id is not None
        media = planted.location.media_dir
        with Image.open(media / f"images/{p.pair_id}.jpg") as img:
            colour = np.asarray(img.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
        samples, rate = soundfile.read(str(media / f"clips/{p.pair_id}.wav"), dtype="float64")
        power = np.abs(np.fft.rfft(samples)) ** 2
        freqs = np.fft.rfftfreq(samples.size, 1 / rate)
        bands = [np.log10(power[(freqs >= lo) & (freqs < hi)].sum() + 1e-12) for lo, hi in BASELINE_BANDS_HZ]
        ids.append(p.pair_id)
        rows.append([*colour, *bands])
    return ids, np.asarray(rows)


def logistic_suspicion(planted: PlantedCorpus, columns: slice, seed: int) -> dict[int, float]:
    """1 − out-of-fold p(OSM label) of a logistic regression on `columns` of :func:`pair_features`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ids, features = pair_features(planted)
    by_id = planted.by_pair_id()
    classes = sorted({by_id[i].osm.index for i in ids})
    labels = np.array([classes.index(by_id[i].osm.index) for i in ids])
    x = features[:, columns]
    probs = np.zeros((len(ids), len(classes)))
    for train, test in StratifiedKFold(BASELINE_FOLDS, shuffle=True, random_state=seed).split(x, labels):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x[train], labels[train])
        probs[np.ix_(test, model.classes_)] = model.predict_proba(x[test])
    return {pid: float(1.0 - probs[i, labels[i]]) for i, pid in enumerate(ids)}


MODALITY_COLUMNS = {"both": slice(0, 8), "image": slice(0, 3), "sound": slice(3, 8)}


# ------------------------------------------------------------------------------------------ the tool


@dataclass
class RankRun:
    suspicion: dict[int, float]
    summary: dict[str, Any]
    seconds: float
    cpu_seconds: float


def run_rank(planted: PlantedCorpus, work: Path, extra: list[str], tag: str) -> RankRun:
    """`annotator rank --json --csv …` on the corpus's store, as a user runs it; suspicion per pair from the CSV."""
    csv_path = work / f"rank-{tag}.csv"
    env = {**os.environ, "ANNOTATOR_DB": planted.location.url, "ANNOTATOR_MEDIA": str(planted.location.media_dir)}
    command = [str(ROOT / ".venv/bin/annotator"), "rank", "--csv", str(csv_path), "--json", *extra]
    command += ["--cache-dir", str(work / "cache")]
    print(f"[{tag}] {' '.join(command[1:])}", file=sys.stderr, flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"annotator rank failed on the {tag} corpus (exit {done.returncode})")
    with csv_path.open(newline="") as handle:
        suspicion = {int(r["pair_id"]): float(r["suspicion"]) for r in csv.DictReader(handle)}
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return RankRun(suspicion, json.loads(done.stdout), seconds, cpu)


def rank_row(corpus: str, ordering: str, run: RankRun, stale: set[int]) -> Row:
    per_fold = [round(float(s), 1) for s in run.summary.get("seconds_per_fold", [])]
    return score_row(
        corpus,
        ordering,
        run.suspicion,
        stale,
        seconds=round(run.seconds, 1),
        cpu_seconds=round(run.cpu_seconds, 1),
        seconds_per_fold=per_fold,
    )


def osm_priors(planted: PlantedCorpus) -> dict[int, float]:
    """``annotator.rank.osm_staleness`` of each pair's OSM evidence, as `rank` computes it from the store."""
    from annotator.rank import osm_staleness, select_candidates
    from annotator.store import open_store, session_scope

    engine = open_store(planted.location)
    try:
        with session_scope(engine) as session:
            selection = select_candidates(session, planted.location.media_dir)
            return {c.pair_id: osm_staleness(c.osm) for c in selection.candidates if c.osm is not None}
    finally:
        engine.dispose()


def combined_rows(corpus: str, run: RankRun, planted: PlantedCorpus, weights: list[float]) -> list[Row]:
    """The rank's suspicion mixed with OSM's staleness prior (``combine_suspicion``) at each weight."""
    from annotator.rank import combine_suspicion

    prior = osm_priors(planted)
    ids = sorted(run.suspicion)
    model = np.array([run.suspicion[i] for i in ids])
    priors = np.array([prior.get(i, np.nan) for i in ids])
    rows = []
    for weight in weights:
        mixed = combine_suspicion(model, priors, weight)
        label = "OSM evidence alone (osm_staleness)" if weight == 1.0 else f"rank + OSM evidence, osm_weight {weight}"
        rows.append(score_row(corpus, label, dict(zip(ids, mixed.tolist(), strict=True)), stale_of(planted)))
    return rows


# ------------------------------------------------------------------------------------------ corpora


def stale_of(planted: PlantedCorpus) -> set[int]:
    return {p.pair_id for p in planted.pairs if p.stale and p.pair_id is not None}


def plant(spec: CorpusSpec, folder: Path) -> PlantedCorpus:
    """Plant the corpus in `folder`, or reuse the one a --keep run planted there with the same spec."""
    location = resolve_store(str(folder / "annotator.db"), folder / "media")
    if (folder / TRUTH_FILE).exists():
        print(f"[{spec.name}] reusing the corpus in {folder}", file=sys.stderr, flush=True)
        return read_corpus(location, spec)
    started = time.perf_counter()
    planted = write_corpus(location, spec)
    print(
        f"[{spec.name}] planted {spec.pairs} pairs ({len(stale_of(planted))} stale) in {folder} "
        f"({time.perf_counter() - started:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    return planted


def bench_calibration(args: argparse.Namespace, work: Path) -> list[Row]:
    corpus = "calibration 5×40"
    planted = plant(calibration_spec(seed=args.seed), work / "calibration")
    stale = stale_of(planted)
    rows = []
    means: dict[str, list[float]] = {name: [] for name in MODALITY_COLUMNS}
    for seed in range(args.baseline_seeds):
        other = planted if seed == args.seed else plant(calibration_spec(seed=seed), work / f"calibration-{seed}")
        for name, columns in MODALITY_COLUMNS.items():
            suspicion = logistic_suspicion(other, columns, seed)
            means[name].append(recall_at(order_by(suspicion, descending=True), stale_of(other)))
    for name, columns in MODALITY_COLUMNS.items():
        note = f"mean over seeds 0–{args.baseline_seeds - 1}: {np.mean(means[name]):.3f}"
        rows.append(
            score_row(corpus, f"logistic regression, {name}", logistic_suspicion(planted, columns, args.seed), stale)
        )
        rows[-1].note = note
    if not args.skip_rank:
        run = run_rank(planted, work, ["--seed", str(args.seed), "--device", "cpu"], "calibration")
        rows.append(rank_row(corpus, "annotator rank (defaults)", run, stale))
    return rows


def bench_advance(args: argparse.Namespace, work: Path) -> list[Row]:
    corpus = f"advance {args.pairs}"
    planted = plant(advance_spec(args.pairs, stale_share=args.stale, seed=args.seed), work / "advance")
    stale = stale_of(planted)
    by_id = planted.by_pair_id()
    n = len(by_id)
    rows = [
        Row(corpus, "random (expected)", queue_length(n) / n, len(stale) / n),
        order_row(
            corpus,
            "OSM confidence, lowest first (today's queue)",
            order_by({p: by_id[p].confidence for p in by_id}, descending=False),
            stale,
        ),
        order_row(
            corpus,
            "OSM edit age, oldest first",
            order_by({p: by_id[p].edit_age_years for p in by_id}, descending=True),
            stale,
        ),
        score_row(corpus, "logistic regression, both", logistic_suspicion(planted, slice(0, 8), args.seed), stale),
    ]
    if args.skip_rank:
        return rows
    extra = ["--seed", str(args.seed), "--folds", str(args.folds), "--device", "cpu"]
    extra += ["--epochs", str(args.epochs)] if args.epochs else []
    run = run_rank(planted, work, extra, "advance")
    rows.append(rank_row(corpus, "annotator rank (small, CPU)", run, stale))
    rows.extend(combined_rows(corpus, run, planted, args.osm_weights))
    if args.gpu:
        gpu_extra = ["--seed", str(args.seed), "--folds", str(args.folds), "--preset", "paper", "--device", "cuda"]
        gpu_extra += ["--epochs", str(args.gpu_epochs)]
        gpu = run_rank(planted, work, gpu_extra, "advance-paper")
        rows.append(rank_row(corpus, f"annotator rank (paper, CUDA, {args.gpu_epochs} epochs)", gpu, stale))
    return rows


# ------------------------------------------------------------------------------------------ output


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'corpus':<18} {'ordering':<46} {'recall@20%':>10} {'AP':>6} {'flagged':>8} {'prec≥0.5':>9} {'seconds':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        seconds = "" if r.seconds is None else f"{r.seconds:.0f}"
        flagged = "" if r.flagged is None else str(r.flagged)
        print(
            f"{r.corpus:<18} {r.ordering:<46} {r.recall_at_20:>10.3f} {_fmt(r.average_precision):>6} {flagged:>8} "
            f"{_fmt(r.precision_flagged):>9} {seconds:>8}"
        )
    for r in rows:
        if r.seconds_per_fold:
            print(
                f"{r.corpus} / {r.ordering}: {r.seconds:.0f} s wall, {r.cpu_seconds:.0f} s CPU; per fold "
                + ", ".join(f"{s:.0f}" for s in r.seconds_per_fold)
                + " s"
            )
        if r.note:
            print(f"{r.corpus} / {r.ordering}: {r.note}")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1000, help="Pairs of the advance corpus [1000].")
    parser.add_argument("--stale", type=float, default=0.2, help="Share of stale OSM labels [0.2].")
    parser.add_argument("--seed", type=int, default=0, help="Seeds the corpora and the rank [0].")
    parser.add_argument("--folds", type=int, default=5, help="Folds of the rank on the advance corpus [5, rank's].")
    parser.add_argument("--epochs", type=int, help="Epochs per fold on the advance corpus [rank's default].")
    parser.add_argument("--only", choices=("advance", "calibration"), help="Run one corpus only.")
    parser.add_argument("--baseline-seeds", type=int, default=16, help="Calibration corpora for the LR mean [16].")
    parser.add_argument(
        "--osm-weights",
        type=lambda text: [float(w) for w in text.split(",")],
        default=list(DEFAULT_OSM_WEIGHTS),
        help="osm_weight values to mix OSM's evidence in with [0.1,0.2,0.3,0.5,1.0].",
    )
    parser.add_argument("--skip-rank", action="store_true", help="Corpora and baselines only (no training).")
    parser.add_argument("--gpu", action="store_true", help="Also rank the advance corpus with the paper preset.")
    parser.add_argument("--gpu-epochs", type=int, default=30, help="Epochs per fold of the paper preset [30].")
    parser.add_argument(
        "--keep",
        type=Path,
        help="Plant the corpora here and keep them (+ bench-rank.json); a rerun reuses them [a temp folder].",
    )
    parser.add_argument("--json", action="store_true", help="Print the rows as JSON instead of a table.")
    return parser.parse_args()


def main() -> None:
    args = _parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rank-") as temp:
        work = args.keep or Path(temp)
        work.mkdir(parents=True, exist_ok=True)
        rows: list[Row] = []
        if args.only in (None, "calibration"):
            rows += bench_calibration(args, work)
        if args.only in (None, "advance"):
            rows += bench_advance(args, work)
    data = json.dumps([asdict(r) for r in rows], indent=2)
    if args.keep:
        (args.keep / "bench-rank.json").write_text(data + "\n")
    if args.json:
        print(data)
    else:
        print_table(rows)


if __name__ == "__main__":
    main()
