"""The Ray executor on a local Ray instance gives exactly the local executor's scan."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
import ray

from prune_engine import sensitivity
from prune_engine.sensitivity import RayExecutor, SerialExecutor, sensitivity_scan
from sample_models import load_sample


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A small Ray instance in this process's session (2 CPUs, no dashboard), shut down afterwards."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_ray_scan_matches_the_local_scan_row_for_row(local_ray: None) -> None:
    bundle = load_sample("digits_cnn")
    ratios = (0.25, 0.5)
    local = sensitivity_scan(bundle.model, bundle.eval_data, ratios, granularity="channel", executor=SerialExecutor())
    sensitivity.clear_scan_cache()
    reports: list[float] = []

    executor = RayExecutor()
    on_ray = sensitivity_scan(
        bundle.model,
        bundle.eval_data,
        ratios,
        granularity="channel",
        executor=executor,
        progress=lambda done, _: reports.append(done),
    )
    executor.close()

    timings = ["seconds", "latency_ms", "latency_saved"]
    pd.testing.assert_frame_equal(local.drop(columns=timings), on_ray.drop(columns=timings), check_exact=True)
    assert on_ray["latency_ms"].gt(0).all(), "Ray workers predicted each copy's latency"
    assert reports[-1] == 1.0 and len(reports) == 6
    assert ray.is_initialized(), "an executor leaves a Ray it did not start running"
