"""The bundled prior's history, and its device kinds as the root of every other fit.

The prior is the synthetic process with medians measured on published grids (fuse 2.2 h,
transformer 4.75 h, ...: ``detectors.etr._synthetic.PRIOR_KIND_MEDIAN_S``), 20,000
outages, seed 0: deterministic, so every installation starts from the same model.

A fit on a history (the database's, or a file from ``gridwatch etr fit``) shrinks its
device kinds toward the prior's kinds (``EtrConfig.prior_root``), not toward its own
outages pooled over kinds: a kind the history lacks (an MV grid's history has no fuses)
or holds a few outages of is the prior's kind, moved by its own outages as they come.
"""

from __future__ import annotations

import functools

from detectors.etr import KindRoot, kind_root, prior_history
from gridwatch.etr._estimate import EtrConfig
from gridwatch.etr._history_import import HistoryColumns

PRIOR_ROWS = 20_000
PRIOR_SEED = 0
PRIOR_NAME = f"prior_history({PRIOR_ROWS}, seed={PRIOR_SEED})"


def prior_columns() -> HistoryColumns:
    h = prior_history(PRIOR_ROWS, seed=PRIOR_SEED)
    return HistoryColumns(h.duration_s, h.censored, h.class_code, h.started_at_s)


@functools.cache
def bundled_kind_root() -> KindRoot:
    """The prior's device-kind classes (computed once a process, about 50 ms)."""
    cols = prior_columns()
    return kind_root(cols.duration_s, cols.censored, cols.class_code, f"bundled {PRIOR_NAME}")


def kind_root_for(config: EtrConfig) -> KindRoot | None:
    """The root a fit under ``config`` shrinks its device kinds toward (None: its own)."""
    return bundled_kind_root() if config.prior_root else None
