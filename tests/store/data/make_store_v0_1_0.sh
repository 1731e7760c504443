#!/usr/bin/env bash
# Regenerates store-v0.1.0.sql: a store written by annotator 0.1.0 (commit aaa3352, before the lifecycle enums),
# dumped as SQL text. tests/store/test_vocabulary_compat.py loads it to prove that today's code reads and writes
# the stored lifecycle values unchanged (no data migration needed).
# Usage (from the repository root, after scripts/setup.sh): bash tests/store/data/make_store_v0_1_0.sh
set -euo pipefail
ROOT=$(pwd)
OLD=$(mktemp -d)/annotator-0.1.0
WORK=$(mktemp -d)
git worktree add --detach "$OLD" aaa3352 >/dev/null
cleanup() {
  "$ROOT/.venv/bin/python" -m annotator.labelstudio.server stop --data-dir "$WORK/ls" >/dev/null 2>&1 || true
  git -C "$ROOT" worktree remove --force "$OLD"
  rm -rf "$WORK"
}
trap cleanup EXIT
A=("$ROOT/.venv/bin/python" -m annotator --db "$WORK/annotator.db")
export PYTHONPATH="$OLD"   # the 0.1.0 code, not this checkout's
export LABEL_STUDIO_BIN="$ROOT/.venv-ls/bin/label-studio"
cd "$WORK"
"${A[@]}" demo corpus >/dev/null
"${A[@]}" init >/dev/null
"${A[@]}" import corpus/recordings/manifest.csv --imagery corpus/tiles --seed 7 >/dev/null
"${A[@]}" prelabel --osm-file corpus/demo.osm >/dev/null
"$ROOT/.venv/bin/python" -m annotator.labelstudio.server start --data-dir ls --media-dir media --env-file ls.env >/dev/null
set -a; source ls.env; set +a
"${A[@]}" ls push --project "compat" >/dev/null
# Three annotators give every kind of verdict: accepted, corrected, unusable, skipped, a majority and a conflict.
"$ROOT/.venv/bin/python" - "$WORK/annotator.db" <<'PY'
import sqlite3, sys, uuid
from annotator.labelstudio import config as lsconfig
from annotator.labelstudio.client import connect
con = sqlite3.connect(sys.argv[1])
rows = con.execute(
    "SELECT t.ls_task_id, e.label FROM ls_tasks t JOIN osm_evidence e ON e.pair_id = t.pair_id "
    "WHERE e.label IS NOT NULL ORDER BY t.pair_id LIMIT 8").fetchall()
import os
conn = connect(os.environ["LABEL_STUDIO_URL"], os.environ["LABEL_STUDIO_API_KEY"])
users = []
for name in ("ann", "bo", "cy"):
    email = f"{name}@example.com"
    users.append(int(conn.client.users.create(username=email, email=email, first_name=name).id))
def say(task, user, verdict):
    if verdict is None:
        conn.client.annotations.create(id=task, result=[], was_cancelled=True, completed_by=user)
    else:
        conn.client.annotations.create(id=task, result=lsconfig.annotation_result(verdict, None), completed_by=user)
other = lambda label: "forest" if label != "forest" else "lake"
(t0, l0), (t1, l1), (t2, l2), (t3, l3), (t4, l4), (t5, l5) = rows[:6]
say(t0, users[0], l0)                      # accepted
say(t1, users[0], other(l1))               # corrected
say(t2, users[0], "unusable")              # unusable
say(t3, users[0], None)                    # skipped
for user, verdict in zip(users, (l4, l4, other(l4))):
    say(t4, user, verdict)                 # majority
say(t5, users[0], l5); say(t5, users[1], other(l5))  # conflict
PY
"${A[@]}" ls pull >/dev/null
"${A[@]}" ls push --project "compat" >/dev/null   # the conflict goes to an adjudication project
"${A[@]}" ls pull --full >/dev/null
"$ROOT/.venv/bin/python" -m annotator.labelstudio.server stop --data-dir ls >/dev/null
"${A[@]}" export dataset --include-unreviewed --min-per-class 3 --augment-below 6 --seed 7 \
    --audio-root corpus/recordings >/dev/null
# The raw Overpass cache is empty for an extract; media paths are relative, so the dump holds no local paths
# except the export's out_path and a reject's detail (both rewritten to a placeholder).
"$ROOT/.venv/bin/python" - "$WORK/annotator.db" "$ROOT/tests/store/data/store-v0.1.0.sql" <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("UPDATE exports SET out_path = '/placeholder/dataset'")
con.execute("UPDATE import_rejects SET detail = replace(detail, ?, '/placeholder')", (sys.argv[1].rsplit("/", 1)[0],))
con.commit()
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for line in con.iterdump():
        out.write(line + "\n")
PY
echo "wrote tests/store/data/store-v0.1.0.sql" >&2
