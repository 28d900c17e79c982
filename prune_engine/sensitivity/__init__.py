"""Sensitivity analysis: prune one layer at a time, see what the model loses, and plan from it.

`scan.py` runs the scan (`sensitivity_scan`), one job per layer and ratio (`jobs.py`),
through an executor (`executors.py`: in this process, a process pool or a Ray cluster);
finished scans are cached by content (`cache.py`); `allocation.py` turns a scan into
per-layer ratios that reach a size, FLOPs or latency target (`suggest_ratios`).
"""

from .allocation import BUDGETS, TargetUnreachableError, suggest_ratios
from .cache import clear_scan_cache
from .executors import (
    POOL_MIN_JOBS,
    RAY_ADDRESS_ENV,
    ExecutorError,
    ProcessExecutor,
    RayExecutor,
    ScanExecutor,
    SerialExecutor,
    default_executor,
)
from .jobs import EVAL_BATCH, ScanJob, ScanSettings, run_job
from .scan import DEFAULT_RATIOS, SCAN_COLUMNS, ScanCancelled, sensitivity_scan

__all__ = [
    "BUDGETS",
    "DEFAULT_RATIOS",
    "EVAL_BATCH",
    "POOL_MIN_JOBS",
    "RAY_ADDRESS_ENV",
    "SCAN_COLUMNS",
    "ExecutorError",
    "ProcessExecutor",
    "RayExecutor",
    "ScanCancelled",
    "ScanExecutor",
    "ScanJob",
    "ScanSettings",
    "SerialExecutor",
    "TargetUnreachableError",
    "clear_scan_cache",
    "default_executor",
    "run_job",
    "sensitivity_scan",
    "suggest_ratios",
]
