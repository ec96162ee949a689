"""MetaSchedule tuning databases kept under ``tuning_logs/<target>/<model>-<H>x<W>/``."""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"


def open_database(db_dir: str | Path):
    """The MetaSchedule JSON database in ``db_dir`` (created if missing)."""
    from tvm.s_tir import meta_schedule as ms

    db_dir = Path(db_dir)
    return ms.database.JSONDatabase(
        path_workload=str(db_dir / WORKLOADS), path_tuning_record=str(db_dir / RECORDS),
        allow_missing=True,
    )
