"""`annotator rank`: order the review queue by how likely each pair's current label is wrong (issue 13).

k-fold cross-validation of the project's own classifier (folds grouped by recording, stratified by class) gives
every pair class probabilities from a model that never saw it; confident learning (cleanlab's label-quality
scores) turns them into a suspicion per pair. Runs are stored (``rank_runs``, ``rank_scores``) for `status` and
`ls push`.

Modules: :mod:`~annotator.rank.config` (options and the training configuration they resolve to),
:mod:`~annotator.rank.selection` (which pairs, which current label), :mod:`~annotator.rank.suspicion` (the
formula and the queue order), :mod:`~annotator.rank.run` (one run, stored), :mod:`~annotator.rank.scores`
(the latest run read back, its precision on real verdicts), :mod:`~annotator.rank.table` (the CSV).
"""

from annotator.rank.config import RankOptions, training_config
from annotator.rank.run import RankedPair, RankReport, rank_pairs, score_pairs
from annotator.rank.scores import RankFeedback, VerdictTally, latest_rank_run, latest_rank_scores, rank_feedback
from annotator.rank.selection import RANK_SKIP_REASONS, RankCandidate, RankSkip, select_candidates
from annotator.rank.suspicion import (
    FLAG_THRESHOLD,
    combine_suspicion,
    label_suspicion,
    osm_staleness,
    queue_ranks,
)
from annotator.rank.table import CSV_COLUMNS, write_rank_csv

__all__ = [
    "CSV_COLUMNS",
    "FLAG_THRESHOLD",
    "RANK_SKIP_REASONS",
    "RankCandidate",
    "RankFeedback",
    "RankOptions",
    "RankReport",
    "RankSkip",
    "RankedPair",
    "VerdictTally",
    "combine_suspicion",
    "label_suspicion",
    "latest_rank_run",
    "latest_rank_scores",
    "osm_staleness",
    "queue_ranks",
    "rank_feedback",
    "rank_pairs",
    "score_pairs",
    "select_candidates",
    "training_config",
    "write_rank_csv",
]
