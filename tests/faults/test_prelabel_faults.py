"""Pre-labelling faults (issue 11, item 7): two `annotator prelabel` processes at once on one store.

Both used to compute the same pending pairs, ask the same queries and race to commit: the loser died with
``IntegrityError`` on ``osm_evidence`` (or ``osm_responses``). Now a conflicting cluster is rolled back and done
again for the pairs still lacking evidence, so both runs finish and every pair gets exactly one evidence row.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, func, select

from annotator.config import StoreLocation
from annotator.store.engine import session_scope
from annotator.store.models import OsmEvidence, OsmResponse
from tests.faults.conftest import Fault
from tests.faults.fake_overpass import ELEMENTS
from tests.osm.conftest import add_pairs
from tests.osm.overpass_server import FakeOverpass, OverpassData

ANNOTATOR = Path(sys.executable).parent / "annotator"
#: 16 points in 8 cells of 1 km (two points each): 8 clusters both runs ask for in the same order.
POINTS = [(60.505 + 0.006 * (n // 2) + 0.0005 * (n % 2), 26.905 + 0.011 * (n // 2)) for n in range(16)]


def test_two_prelabels_at_once_both_finish(engine: Engine, location: StoreLocation, fault: Fault) -> None:
    ids = add_pairs(engine, POINTS)
    server = FakeOverpass(OverpassData(ELEMENTS), latency_s=0.3).start()  # both runs' requests overlap
    try:
        command = [str(ANNOTATOR), "--db", str(location.sqlite_path), "--media-dir", str(location.media_dir)]
        command += ["prelabel", "--overpass-url", server.url, "--cell-km", "1", "--retries", "0"]
        runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
        outputs = [run.communicate(timeout=180) for run in runs]
    finally:
        server.stop()
    with session_scope(engine) as session:
        evidence = {e.pair_id: e.label for e in session.scalars(select(OsmEvidence))}
        responses = session.scalar(select(func.count()).select_from(OsmResponse))
    fault.lost(len(set(ids) - set(evidence)))
    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        assert "Traceback" not in stderr and "IntegrityError" not in stderr, stderr
        assert run.returncode == 0, stdout + stderr
    assert sorted(evidence) == sorted(ids) and set(evidence.values()) == {"farmland"}
    assert responses == 8  # one cached response per cluster, whichever run stored it
