"""Add runs to an experiment database from a process of its own (for the concurrency and crash tests).

    python _experiment_writer.py DB COUNT TAG [--wait]

Adds COUNT runs named TAG-0, TAG-1, ... (COUNT 0: until killed), one transaction each,
and prints each run's id on a line of its own, flushed, right after it is committed.
With --wait it first prints "ready" and waits for a line on stdin, so that several
writers can be released at the same moment.
"""

from __future__ import annotations

import itertools
import json
import sys
import types
from pathlib import Path

# Load prune_engine.experiments without running prune_engine/__init__.py, which imports
# torch (seconds per process); the store needs only the standard library and pandas.
_package = types.ModuleType("prune_engine")
_package.__path__ = [str(Path(__file__).resolve().parents[2] / "prune_engine")]
sys.modules.setdefault("prune_engine", _package)

from prune_engine.experiments import ExperimentStore  # noqa: E402

PLAN = json.dumps({"granularity": "unstructured", "criterion": "l1", "scope": "global", "ratios": {"fc": 0.5}})


def main(argv: list[str]) -> None:
    path, count, tag = argv[0], int(argv[1]), argv[2]
    store = ExperimentStore(path)
    if "--wait" in argv:
        print("ready", flush=True)
        sys.stdin.readline()
    for index in itertools.count() if count == 0 else range(count):
        run_id = store.add(
            f"{tag}-{index}",
            PLAN,
            {"accuracy": 0.5 + index % 50 / 100, "params": 1000 + index, "writer_index": index},
            model_name="writer",
            model_fingerprint=tag,
        )
        print(run_id, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
