#!/usr/bin/env bash
# The main job on embedded defaults, offline: generate a demo corpus, then run every stage of the pipeline
# with the real CLI against a SQLite store and a locally started Label Studio (127.0.0.1).
# Usage: scripts/demo.sh [RUN_DIR]   (default demo-run/; it is recreated)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
RUN=${1:-demo-run}
if [ -d "$RUN/label-studio" ]; then  # a server left running by an earlier demo in this folder
  .venv/bin/annotator ls stop --data-dir "$RUN/label-studio" >/dev/null 2>&1 || true
fi
rm -rf "$RUN"
mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd)
export ANNOTATOR_DB="$RUN/annotator.db"
A=(.venv/bin/annotator)
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

say "1. Generate the offline demo corpus (recordings of assorted formats and lengths, tiles, OSM extract)"
"${A[@]}" demo "$RUN/corpus"

say "2. Create the store"
"${A[@]}" init

say "3. Import the recordings; images are cut from the local tile pyramid"
"${A[@]}" import "$RUN/corpus/recordings/manifest.csv" --imagery "$RUN/corpus/tiles" --seed 7

say "4. Pre-label every pair from the OSM extract"
"${A[@]}" prelabel --osm-file "$RUN/corpus/demo.osm"

say "5. Rank the pairs by how likely their OSM label is stale (out-of-fold predictions of the classifier)"
"${A[@]}" rank --folds 3 --seed 7 --csv "$RUN/rank.csv"
# `rank` printed the head of the queue; where did the demo's stale cell (annotator/demo/world.py) land in it?
.venv/bin/python - "$RUN/rank.csv" <<'PY' >&2
import csv, sys
from annotator.demo.world import STALE_OSM
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
for (row, col), claimed in STALE_OSM.items():
    at = [int(r["rank"]) for r in rows if f"-r{row}c{col}-" in r["recording_id"]]
    print(f"Stale cell r{row}c{col} (OSM still says {claimed}): its pairs are at queue positions {at} of {len(rows)}.")
PY

say "6. Start Label Studio on 127.0.0.1; push every pair for two reviewers each, most suspicious first"
"${A[@]}" ls serve --data-dir "$RUN/label-studio" --files-root "$RUN"
# The env file (mode 600) holds LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY and the demo login; never echoed.
set -a; source "$RUN/label-studio/ls.env"; set +a
# A fifth of the tasks go without the pre-selected OSM class, to measure how much pre-selection sways verdicts.
"${A[@]}" ls push --project "annotator demo" --overlap 2 --blind-fraction 0.2 --seed 7

say "7. Two simulated annotators review every task (one careful, one sloppy), then pull their verdicts"
.venv/bin/python scripts/simulate_annotators.py --project "annotator demo"
"${A[@]}" ls pull
# Pairs both agreed on are settled: serve a share of them again as control items, to a newcomer; conflicts go to
# adjudication, which the careful annotator settles.
"${A[@]}" ls push --project "annotator demo" --control-fraction 0.3 --seed 7
.venv/bin/python scripts/simulate_annotators.py --project "annotator demo" --newcomer --adjudicate
"${A[@]}" ls pull

say "8. Status and the review report (per-annotator figures, agreement, anchoring, the ranking's precision)"
"${A[@]}" status
"${A[@]}" report "$RUN/review-report.html"

say "9. Export the balanced dataset (OSM labels stand in for pairs nobody reviewed, marked so in metadata.csv)"
"${A[@]}" export "$RUN/dataset" --include-unreviewed --min-per-class 3 --augment-below 6 --seed 7 \
    --audio-root "$RUN/corpus/recordings"
"${A[@]}" verify "$RUN/dataset"
# The same export split by spatial block: no test image shares ground with a training image. (The demo world has
# one or two cells per class, so its blocks are whole classes: fine for showing the leakage, too coarse to train.)
"${A[@]}" export "$RUN/dataset-block" --include-unreviewed --min-per-class 3 --augment-below 6 --seed 7 \
    --audio-root "$RUN/corpus/recordings" --split-by block
.venv/bin/python - "$RUN/dataset" "$RUN/dataset-block" <<'PY' >&2
import json, sys
for folder in sys.argv[1:]:
    split = json.load(open(f"{folder}/manifest.json"))["split"]
    leak = split["leakage"]
    print(f"Split by {split['by']} ({split['groups']} groups): {leak['pairs']} pairs of samples in different splits "
          f"have overlapping images, {leak['original_pairs']} of them between two originals.")
PY

say "10. Train the fusion classifier for two epochs on CPU and evaluate it"
"${A[@]}" train "$RUN/dataset" --out "$RUN/train" --epochs 2 --batch-size 16 --device cpu --seed 7
"${A[@]}" evaluate "$RUN/train/checkpoint.pt" "$RUN/dataset" --split test

say "Done. Review the pairs in Label Studio at $LABEL_STUDIO_URL"
echo "  login: $LABEL_STUDIO_LOGIN_EMAIL / password: $LABEL_STUDIO_LOGIN_PASSWORD" >&2
echo "  then: ANNOTATOR_DB=$ANNOTATOR_DB .venv/bin/annotator ls pull && .venv/bin/annotator status" >&2
echo "  the review report: $RUN/review-report.html; the data card: $RUN/dataset/README.md" >&2
echo "  stop the server: .venv/bin/annotator ls stop --data-dir $RUN/label-studio" >&2
