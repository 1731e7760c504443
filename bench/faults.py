"""The fault table of issue 11: run the fault-injection suite and print, per family, faults tried, survived, rows lost.

Usage: .venv/bin/python bench/faults.py [--json] [pytest args…]

Runs ``pytest tests/faults`` with ``ANNOTATOR_FAULT_LOG`` set, so every fault test appends one line (family, case,
survived, rows lost; see tests/faults/conftest.py), then prints the table and every fault that was not survived.
The goal is every fault survived and 0 rows lost. Needs the same set-up as the test command (Label Studio and
PostgreSQL for their families).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_suite(pytest_args: list[str]) -> tuple[list[dict[str, object]], float, int]:
    """Run tests/faults; returns (one record per fault test, wall seconds, pytest's exit code)."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "faults.jsonl"
        env = {**os.environ, "ANNOTATOR_FAULT_LOG": str(log)}
        env.setdefault("LABEL_STUDIO_BIN", str(ROOT / ".venv-ls" / "bin" / "label-studio"))
        start = time.monotonic()
        code = subprocess.call(
            [sys.executable, "-m", "pytest", "tests/faults", "-q", "-p", "no:cacheprovider", *pytest_args],
            cwd=ROOT,
            env=env,
            stdout=sys.stderr,
        )
        seconds = time.monotonic() - start
        records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return records, seconds, code


def table(records: list[dict[str, object]]) -> dict[str, dict[str, int]]:
    """Per family: tried, survived, rows_lost."""
    rows: dict[str, dict[str, int]] = defaultdict(lambda: {"tried": 0, "survived": 0, "rows_lost": 0})
    for record in records:
        row = rows[str(record["family"])]
        row["tried"] += 1
        row["survived"] += bool(record["survived"])
        row["rows_lost"] += int(record["rows_lost"])  # type: ignore[call-overload]
    return dict(sorted(rows.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the table as one JSON object")
    args, pytest_args = parser.parse_known_args()
    records, seconds, code = run_suite(pytest_args)
    rows = table(records)
    total = {key: sum(r[key] for r in rows.values()) for key in ("tried", "survived", "rows_lost")}
    if args.json:
        print(json.dumps({"families": rows, "total": total, "seconds": round(seconds, 1)}, indent=2))
    else:
        print(f"{'family':<14} {'tried':>6} {'survived':>9} {'rows lost':>10}")
        for family, row in rows.items():
            print(f"{family:<14} {row['tried']:>6} {row['survived']:>9} {row['rows_lost']:>10}")
        print(f"{'all':<14} {total['tried']:>6} {total['survived']:>9} {total['rows_lost']:>10}")
        print(f"({seconds:.0f} s)")
        for record in records:
            if not record["survived"] or record["rows_lost"]:
                print(f"not survived: {record['family']}: {record['case']} (rows lost {record['rows_lost']})")
    return 0 if code == 0 and total["survived"] == total["tried"] and total["rows_lost"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
