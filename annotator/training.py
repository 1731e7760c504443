"""Training runs in the store: whether there is a store to record into, and the record itself (SPEC §9).

Training itself is :func:`model.train.train` and needs no database; a run is recorded only when a store already
exists, so training on a bare dataset folder never creates one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from annotator.config import StoreLocation
from annotator.files import sha256_file
from annotator.store import TrainingRun
from dataset.layout import MANIFEST_FILE

if TYPE_CHECKING:
    from model.train import TrainResult

#: Metric entries too large for the run record; they stay in RUN_DIR/metrics.json and the checkpoint.
_UNRECORDED_METRICS = ("per_class", "classes")


def store_exists(location: StoreLocation) -> bool:
    """False when `location` is an SQLite file that does not exist (a server database is assumed to exist)."""
    path = location.sqlite_path
    return path is None or path.exists()


def record_training_run(
    session: Session, dataset: Path | str, result: TrainResult, params: Mapping[str, Any]
) -> TrainingRun:
    """Add the row describing one finished training run; the caller commits.

    Args:
        session: an open session of the store.
        dataset: the dataset folder trained on (its manifest.json hash is recorded when it is an export), or the
            URL / brace pattern of the shards trained on (recorded as given, without a hash).
        result: what :func:`model.train.train` returned.
        params: the training configuration (``TrainConfig.to_dict()``).

    Returns:
        The new (flushed) :class:`~annotator.store.TrainingRun`.
    """
    local = Path(dataset)
    if isinstance(dataset, str) and ("://" in dataset or not local.exists()):
        dataset_path, manifest_sha256 = dataset, None  # a URL or a brace pattern: nothing local to hash
    else:
        manifest = local / MANIFEST_FILE
        dataset_path = str(local.resolve())
        manifest_sha256 = sha256_file(manifest) if manifest.is_file() else None
    test = {k: v for k, v in result.test_metrics.items() if k not in _UNRECORDED_METRICS}
    run = TrainingRun(
        dataset_path=dataset_path,
        dataset_manifest_sha256=manifest_sha256,
        run_dir=str(result.run_dir.resolve()),
        params=dict(params),
        metrics={
            "test": test,
            "best_epoch": result.best_epoch,
            "val_weighted_f1": result.val_metrics.get("weighted_f1"),
            # The authors' report: mean ± std of the test scores over the best epoch and the five after.
            "test_window": result.test_window,
            "data_path": result.data_path,
        },
        checkpoint_path=str(result.checkpoint_path.resolve()),
    )
    session.add(run)
    session.flush()
    return run
