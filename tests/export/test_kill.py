"""A killed export leaves no partial OUT, and the next export cleans up after it (real subprocess, SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from annotator.vocabulary import SceneClass
from tests.export.world import labelled, plant_pairs

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_kill_mid_export_leaves_no_partial_out(engine, location, cli, tmp_path):
    plant_pairs(engine, location, labelled(SceneClass.FOREST, 150))
    out = tmp_path / "dataset"
    command = [
        sys.executable,
        "-m",
        "annotator",
        "--db",
        location.url,
        "--media-dir",
        str(location.media_dir),
        "export",
        str(out),
        "--augment-below",
        "0",
        "--workers",
        "2",
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    temp = tmp_path / f".dataset.export-tmp-{process.pid}"
    written = temp / "sound" / SceneClass.FOREST.value
    deadline = time.monotonic() + 120
    # Wait until the export is writing samples into its temp folder, then kill it without warning.
    while not (written.is_dir() and any(written.iterdir())):
        assert process.poll() is None, f"export ended before it could be killed: {process.communicate()}"
        assert time.monotonic() < deadline, "the export never started writing"
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()
    assert temp.is_dir()  # the killed run's leftovers, which the next run must clear

    result = cli("export", str(out), "--augment-below", "0")
    assert "Wrote 150 pairs" in result.stdout
    assert not temp.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".dataset")) == []
    assert cli("verify", str(out)).exit_code == 0
