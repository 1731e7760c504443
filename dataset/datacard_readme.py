"""``README.md`` of an export: a datasheet rendered from :class:`dataset.datacard.CardFacts` alone.

It says what the dataset is, how it was made (sources, review, balancing, split), what it holds, under which
licences, what it cannot be trusted for, and how to load it. Same facts, same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

from annotator.vocabulary import NUM_CLASSES, LabelSource, SceneClass
from dataset.datacard import SPLIT_NAMES, UNKNOWN, WEBDATASET, CardFacts, CorrectionMatrix
from dataset.layout import (
    ATTRIBUTION_FILE,
    MANIFEST_FILE,
    METADATA_FILE,
    README_FILE,
    SAMPLES_FILE,
    SOUND_DIR,
    SPLITS_DIR,
    STATISTICS_FILE,
    VISION_DIR,
)


def _cell(text: object) -> str:
    """A markdown table cell: pipes escaped, line breaks flattened."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip() or "—"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "—"


def _plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word if n == 1 else (words or word + 's')}"


def _intro(f: CardFacts) -> list[str]:
    classes = len(f.per_class_split)
    recordings = len(f.attribution)
    return [
        "# Audiovisual aerial scene dataset (ADVANCE layout)",
        "",
        f"{_plural(f.total, 'sample')} — each a 512×512 aerial image and a 10 s sound clip recorded at the same "
        f"place — in {classes} of the {NUM_CLASSES} scene classes of ADVANCE (Hu et al., ECCV 2020), "
        f"from {_plural(recordings, 'geotagged recording')}: {f.total_originals} original pairs and "
        f"{sum(f.offsets.values())} offset pairs. Written by `annotator export` (annotator {f.tool_version}); "
        f"every file is listed with its sha256 in `{MANIFEST_FILE}`, and `annotator verify DATASET` re-checks them.",
        "",
        "## Files",
        "",
        *_table(
            ["path", "what"],
            [
                *_media_rows(f),
                [f"`{METADATA_FILE}`", "one row per sample: class, split, place, origin, labels, licence, source"],
                [f"`{ATTRIBUTION_FILE}`", "author, licence and source URL of every recording"],
                [f"`{SPLITS_DIR}/train.txt`, `val.txt`, `test.txt`", "the sample ids of each split, sorted"],
                [f"`{STATISTICS_FILE}`, `{SAMPLES_FILE}`", "samples per class and split; one example per class"],
                [f"`{MANIFEST_FILE}`", "parameters, counts, split and leakage, sha256 of every file"],
                [f"`{README_FILE}`", "this data card"],
            ],
        ),
        "Sample ids are `<recording>` for an original pair and `<recording>_<k>` (k = 1–4: N, E, S, W) for its offset "
        "pairs.",
        "",
    ]


def _shards(f: CardFacts) -> dict[str, int]:
    """Shards per split of a webdataset export (empty for a folder export)."""
    if f.parameters.get("format") != WEBDATASET:
        return {}
    size = max(int(f.parameters.get("shard_size") or 1), 1)
    return {s: -(-sum(c.get(s, 0) for c in f.per_class_split.values()) // size) for s in SPLIT_NAMES}


def _media_rows(f: CardFacts) -> list[list[str]]:
    rate = f.parameters.get("sample_rate")
    shards = _shards(f)
    if not shards:
        return [
            [f"`{VISION_DIR}/<class>/<id>.jpg`", "512×512 RGB JPEG aerial image centred on the recording"],
            [f"`{SOUND_DIR}/<class>/<id>.wav`", f"10 s mono PCM16 WAV at {rate} Hz"],
        ]
    return [
        [
            "`<split>-000000.tar`, …",
            f"webdataset shards of {f.parameters.get('shard_size')} samples ("
            + ", ".join(f"{split} {n}" for split, n in shards.items())
            + f"); per sample `<id>.jpg` (512×512 RGB JPEG), `<id>.wav` (10 s mono PCM16 at {rate} Hz) and `<id>.json` "
            "(its metadata.csv row); a `.` in an id is written `%2E`",
        ]
    ]


def _composition(f: CardFacts) -> list[str]:
    rows = []
    for cls, splits in f.per_class_split.items():
        total = sum(splits.values())
        rows.append(
            [cls, f.originals.get(cls, 0), f.offsets.get(cls, 0), total, *(splits.get(s, 0) for s in SPLIT_NAMES)]
        )
    totals = [sum(f.per_class_split[c].get(s, 0) for c in f.per_class_split) for s in SPLIT_NAMES]
    rows.append(["**all**", f.total_originals, sum(f.offsets.values()), f.total, *totals])
    lines = ["## Composition", "", *_table(["class", "original", "offset", "total", *SPLIT_NAMES], rows)]
    if f.dropped:
        dropped = ", ".join(f"{c} ({n})" for c, n in f.dropped.items())
        lines += [
            f"Dropped for having fewer than {f.parameters.get('min_per_class')} pairs (`--min-per-class`): {dropped}.",
            "",
        ]
    if f.skipped:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(f.skipped.items()))
        lines += [f"Original pairs of the store left out: {skipped}.", ""]
    return lines


def _sources(f: CardFacts) -> list[str]:
    authors = len({a.author for a in f.attribution if a.author})
    lines = [
        "## How it was made",
        "",
        "### Sources",
        "",
        f"- **Sound**: {_plural(len(f.attribution), 'recording')} by {_plural(authors, 'author')} (each listed in "
        f"`{ATTRIBUTION_FILE}` with its licence and source URL). Each original pair holds a seeded 10 s window of "
        "its recording"
        + (
            f"; {_plural(f.looped_recordings, 'recording')} shorter than 10 s were looped."
            if f.looped_recordings
            else "."
        )
        + f" Clips were resampled to {f.parameters.get('sample_rate')} Hz (soxr).",
        "- **Imagery** (the source each image was cut from, at 0.5 m/px unless the source says otherwise; the "
        "acquisition date where the source states it):",
        "",
        *_table(
            ["imagery source", "acquired", "pairs"],
            [[s.source or UNKNOWN, s.date or UNKNOWN, s.pairs] for s in f.imagery_sources],
        ),
    ]
    if f.osm_sources:
        lines += [
            "- **OpenStreetMap** pre-labels (the class OSM suggests for the image footprint), from:",
            "",
            *_table(
                ["OSM extract or endpoint", "data as of", "pairs"],
                [[s.source, s.date or UNKNOWN, s.pairs] for s in f.osm_sources],
            ),
        ]
    else:
        lines += ["- **OpenStreetMap**: no exported pair has OSM evidence.", ""]
    return lines


def _agreement(f: CardFacts) -> str:
    a = f.agreement
    if a is None or a.annotators == 0:
        return "No reviewer figures are in the store."
    if a.alpha is None:
        return (
            f"The store holds verdicts of {_plural(a.annotators, 'annotator')}; agreement is not measured (no pair "
            "has two annotators' verdicts)."
        )
    return (
        f"Annotator agreement (all review projects of the store, {_plural(a.annotators, 'annotator')}): "
        f"Krippendorff's α = {a.alpha:.3f} (nominal) over {_plural(a.alpha_units, 'pair')} with two or more "
        "verdicts."
    )


def _review(f: CardFacts) -> list[str]:
    human = f.label_sources.get(LabelSource.HUMAN.value, 0)
    osm = f.label_sources.get(LabelSource.OSM.value, 0)
    reasons = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(f.final_reasons.items()))
    process = (
        "Every pair was pre-labelled from OpenStreetMap (discrete objects outrank land cover; the coverage of the "
        "footprint is kept as evidence) and pushed to Label Studio, where reviewers saw the image, heard the clip "
        "and accepted or corrected the suggestion, or marked the pair unusable (unusable pairs and unresolved "
        "conflicts are never exported)."
        if human
        else "Every pair was pre-labelled from OpenStreetMap (discrete objects outrank land cover). No exported "
        "label was reviewed by a person."
    )
    lines = [
        "### Labels and review",
        "",
        process,
        "",
        f"- Label source of the {f.total_originals} original pairs: **{human} human-reviewed** "
        f"({_pct(human, f.total_originals)}), **{osm} OSM only** ({_pct(osm, f.total_originals)})"
        + (" — exported with `--include-unreviewed`, marked `label_source=osm` in metadata.csv." if osm else "."),
    ]
    if human:
        lines.append(
            f"- Human labels decided by: {reasons or UNKNOWN}; {_plural(f.reviewers, 'reviewer')} labelled the "
            "exported pairs."
        )
    lines += [f"- {_agreement(f)}", ""]
    lines += _correction(f.correction)
    return lines


def _correction(m: CorrectionMatrix) -> list[str]:
    total = sum(sum(row) for row in m.counts)
    if not total:
        return ["No exported pair has a human label, so there is no correction matrix.", ""]
    rows = [i for i, row in enumerate(m.counts) if any(row)]
    cols = [j for j in range(len(m.columns)) if any(m.counts[i][j] for i in rows)]
    agreed = sum(m.counts[i][m.columns.index(m.rows[i])] for i in rows if m.rows[i] in m.columns)
    suggested = sum(sum(m.counts[i]) for i in rows if m.rows[i] in m.columns)  # pairs OSM gave a class
    return [
        f"Correction matrix of the exported originals with a human label (rows: OSM suggestion, columns: human "
        f"label); of the {suggested} pairs OSM suggested a class for, the reviewers kept it for {agreed} "
        f"({_pct(agreed, suggested)}):",
        "",
        *_table(
            ["OSM \\ human", *(m.columns[j] for j in cols)],
            [[m.rows[i], *(m.counts[i][j] for j in cols)] for i in rows],
        ),
    ]


def _balancing(f: CardFacts) -> list[str]:
    p = f.parameters
    lines = ["### Balancing and offsets", ""]
    offset_m = float(p.get("offset_m") or 0)
    if f.augmented:
        side = f.footprint_side_m
        overlap = max(0.0, 1 - offset_m / side) if side else 0.0
        lines += [
            f"Classes with fewer than {p.get('augment_below')} pairs (`--augment-below`) — {', '.join(f.augmented)} — "
            f"got four offset pairs per original: the location moved {offset_m:g} m north, east, south and west, a "
            "new image cut there and a new seeded 10 s window of the same recording. An offset image shares about "
            f"{100 * overlap:.0f} % of its width with its original's, so offsets are augmentations, not new places; "
            "they always stay in their original's split.",
            "",
        ]
    else:
        lines += ["No class was augmented with offset pairs.", ""]
    return lines


def _split(f: CardFacts) -> list[str]:
    s = f.split
    leakage = s.get("leakage", {})
    by_mode = s.get("leakage_by_mode", {})
    if s.get("by") == "block":
        blocks = _plural(int(s.get("groups", 0)), "block")
        how = (
            f"by spatial block (`--split-by block`): recordings whose image footprints overlap, or whose places lie "
            f"within {float(s.get('block_m', 0)):g} m of each other, form one block ({blocks}), "
            "and whole blocks were assigned, as close to 70/10/20 per class as the blocks allow"
        )
    else:
        how = (
            f"by recording (`--split-by recording`, the paper's): a recording and its offset pairs share a split "
            f"({_plural(int(s.get('groups', 0)), 'recording')}), 70/10/20 per class"
        )
    lines = [
        "### Split",
        "",
        f"Drawn {how}, deterministically for seed {f.parameters.get('seed')}. Realised shares per class:",
        "",
        *_table(
            ["class", *SPLIT_NAMES],
            [
                [cls, *(f"{100 * shares.get(x, 0.0):.1f} %" for x in SPLIT_NAMES)]
                for cls, shares in s.get("shares", {}).items()
            ],
        ),
        f"Leakage: **{leakage.get('pairs', 0)}** pairs of samples in different splits have overlapping image "
        f"footprints ({', '.join(f'{k}: {v}' for k, v in leakage.get('by_splits', {}).items())}; "
        f"{leakage.get('original_pairs', 0)} of them between two original pairs); split by recording it would be "
        f"{by_mode.get('recording', '—')}, split by block {by_mode.get('block', '—')}.",
        "",
    ]
    return lines


def _licences(f: CardFacts) -> list[str]:
    recordings: dict[str, int] = {}
    samples: dict[str, int] = {}
    for a in f.attribution:
        key = a.license or UNKNOWN
        recordings[key] = recordings.get(key, 0) + 1
        samples[key] = samples.get(key, 0) + a.samples
    authors: dict[str, int] = {}
    for a in f.attribution:
        authors[a.author or UNKNOWN] = authors.get(a.author or UNKNOWN, 0) + 1
    return [
        "## Licences and attribution",
        "",
        *_table(["licence", "recordings", "samples"], [[k, recordings[k], samples[k]] for k in sorted(recordings)]),
        f"Authors of the recordings (recordings each; the source URL of every recording is in `{ATTRIBUTION_FILE}`):",
        "",
        *_table(["author", "recordings"], [[name, authors[name]] for name in sorted(authors)]),
        f"The sounds are under their recordings' licences: credit each author as `{ATTRIBUTION_FILE}` lists them "
        "(a CC-BY licence requires it, with the source URL). OSM data © OpenStreetMap contributors (ODbL); the images "
        "are under the terms of their imagery source (table above).",
        "",
    ]


def _limitations(f: CardFacts) -> list[str]:
    items = []
    osm = f.label_sources.get(LabelSource.OSM.value, 0)
    if osm:
        items.append(
            f"{osm} of {f.total_originals} original labels ({_pct(osm, f.total_originals)}) are OSM suggestions no "
            "person checked; filter on `label_source == human` for a reviewed set."
        )
    items.append(
        "OSM labels describe the map at the extract's date, the image its acquisition date and the sound the moment "
        "of recording; the three may disagree (new buildings, seasons, a passing train)."
    )
    unknown = sum(s.pairs for s in f.imagery_sources if not s.date)
    if unknown:
        items.append(f"The imagery acquisition date is unknown for {_plural(unknown, 'pair')}.")
    leaking = int(f.split.get("leakage", {}).get("pairs", 0))
    if leaking:
        items.append(
            f"{_plural(leaking, 'pair')} of samples in different splits share ground (overlapping images): test "
            "scores are optimistic for unseen places; re-export with `--split-by block` for a spatial split."
        )
    target = {"train": 0.7, "val": 0.1, "test": 0.2}
    off = [
        cls
        for cls, shares in f.split.get("shares", {}).items()
        if max(abs(shares.get(split, 0.0) - share) for split, share in target.items()) > 0.1
    ]
    if off:
        items.append(
            f"{_plural(len(off), 'class', 'classes')} could not be split close to 70/10/20 (a share more than 10 "
            f"points off; too few {'blocks' if f.split.get('by') == 'block' else 'recordings'}): {', '.join(off)}. "
            "See the realised shares above before reporting per-class test scores."
        )
    if f.offsets and sum(f.offsets.values()):
        items.append(
            "Offset pairs re-use their original's recording and most of its ground; count originals, not "
            "samples, when reporting dataset size."
        )
    sizes: list[int] = [sum(split.values()) for split in f.per_class_split.values()]
    if sizes and min(sizes) < max(sizes):
        items.append(f"Classes are imbalanced: from {min(sizes)} to {max(sizes)} samples per class.")
    missing = NUM_CLASSES - len(f.per_class_split)
    if missing:
        present = set(f.per_class_split)
        absent = ", ".join(c.value for c in SceneClass if c.value not in present)
        items.append(
            f"{_plural(missing, 'class', 'classes')} of ADVANCE {'is' if missing == 1 else 'are'} absent: {absent}."
        )
    items.append(
        "Recordings come from volunteers' uploads: places, devices and the sounds chosen are not a random "
        "sample of the world."
    )
    return ["## Known limitations", "", *(f"- {item}" for item in items), ""]


def _loading(f: CardFacts) -> list[str]:
    shards = _shards(f)
    if shards:
        last = max(shards.get("train", 1) - 1, 0)
        return [
            "## How to load it",
            "",
            "```python",
            "import io",
            "import json",
            "",
            "import soundfile",
            "import webdataset as wds",
            "from PIL import Image",
            "",
            f'urls = "DATASET/train-{{000000..{last:06d}}}.tar"  # or an http(s):// or object-store URL',
            "for sample in wds.WebDataset(urls, shardshuffle=False):",
            '    image = Image.open(io.BytesIO(sample["jpg"]))',
            '    audio, rate = soundfile.read(io.BytesIO(sample["wav"]))',
            '    row = json.loads(sample["json"])  # id, class, split and the metadata.csv columns',
            "```",
            "",
            "Or train the paper's classifier on it: `annotator train DATASET --out RUN_DIR` (a shard folder or a "
            "brace pattern). Class indices follow the fixed ADVANCE order ("
            + ", ".join(c.value for c in SceneClass)
            + "), never the classes present.",
            "",
        ]
    return [
        "## How to load it",
        "",
        "```python",
        "import csv",
        "from pathlib import Path",
        "",
        "import soundfile",
        "from PIL import Image",
        "",
        'root = Path("DATASET")',
        f'rows = list(csv.DictReader((root / "{METADATA_FILE}").open(newline="", encoding="utf-8")))',
        'train = [r for r in rows if r["split"] == "train"]',
        "row = train[0]",
        f'image = Image.open(root / "{VISION_DIR}" / row["class"] / f"{{row[\'id\']}}.jpg")',
        f'audio, rate = soundfile.read(root / "{SOUND_DIR}" / row["class"] / f"{{row[\'id\']}}.wav")',
        "```",
        "",
        "Or train the paper's classifier on it: `annotator train DATASET --out RUN_DIR`. Class indices follow the "
        "fixed ADVANCE order (" + ", ".join(c.value for c in SceneClass) + "), never the folders present.",
        "",
    ]


def _parameters(f: CardFacts) -> list[str]:
    rows = [[f"`{key}`", "—" if value is None else f"`{value}`"] for key, value in sorted(f.parameters.items())]
    return ["## Export parameters", "", *_table(["parameter", "value"], rows)]


def datacard_bytes(facts: CardFacts) -> bytes:
    """README.md: the data card of an export, from `facts` alone (same facts, same bytes)."""
    sections = [
        _intro(facts),
        _composition(facts),
        _sources(facts),
        _review(facts),
        _balancing(facts),
        _split(facts),
        _licences(facts),
        _limitations(facts),
        _loading(facts),
        _parameters(facts),
    ]
    text = "\n".join(line for section in sections for line in section)
    return (text.rstrip("\n") + "\n").encode("utf-8")
