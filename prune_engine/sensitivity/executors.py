"""Where a scan's jobs run: in this process, in a local process pool, or on a Ray cluster.

Every executor gives the same rows and numbers; only the timings (`seconds`, and the predicted
latency, which each process times on its own) differ.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import os
import pickle
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

import torch
from torch import nn

from ..data import EvalData
from ..errors import PruneScopeError
from ..metrics import available_devices
from .jobs import JobResults, ScanJob, ScanSettings, run_job

RAY_ADDRESS_ENV = "PRUNESCOPE_RAY_ADDRESS"
"""Set to a Ray address (e.g. `ray://head:10001` or `auto`) to run scans on that cluster."""

POOL_MIN_JOBS = 24
"""Below this many jobs the default executor stays in-process: starting workers costs more."""


class ExecutorError(PruneScopeError):
    """Worker processes or a Ray cluster could not run the scan."""


class ScanExecutor(Protocol):
    """Runs scan jobs somewhere and yields each job's result as it finishes (in any order).

    Closing the iterator early (a cancel, an error) stops jobs that have not started.
    """

    def run(self, model: nn.Module, data: EvalData, settings: ScanSettings, jobs: Sequence[ScanJob]) -> JobResults: ...


class SerialExecutor:
    """Runs the jobs one after the other in this process, with torch's own threads."""

    def run(self, model: nn.Module, data: EvalData, settings: ScanSettings, jobs: Sequence[ScanJob]) -> JobResults:
        for job in jobs:
            yield job, run_job(model, data, settings, job)


def portable(model: nn.Module, data: EvalData, settings: ScanSettings) -> bytes:
    """What a worker needs, serialised with every tensor readable on a CPU-only machine
    (`unpack` places the model on the worker's device)."""
    buffer = io.BytesIO()
    torch.save((model, data, settings), buffer, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    return buffer.getvalue()


def unpack(payload: bytes) -> tuple[nn.Module, EvalData, ScanSettings]:
    """The model, data and settings of `portable`, the model on the same kind of device it was on.

    Raises ExecutorError, saying why, when this worker has no such device.
    """
    model, data, settings = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
    kind = torch.device(settings.device).type
    if kind not in available_devices():
        raise ExecutorError(
            f"The scanned model runs on {settings.device}, but a worker has no {kind} device (it has "
            f"{', '.join(available_devices())}); give the workers one (RayExecutor(gpus_per_task=1) for CUDA), "
            "scan with SerialExecutor(), or move the model to the CPU first."
        )
    return model.to(kind), data, settings


_WORKER_STATE: bytes | tuple[nn.Module, EvalData, ScanSettings] | None = None


def _init_worker(payload: bytes, threads: int) -> None:
    global _WORKER_STATE
    torch.set_num_threads(threads)
    _WORKER_STATE = payload


def _worker_job(job: ScanJob) -> dict[str, Any]:
    """Run one job; the first job unpacks the model (so a missing device reaches the caller as an error)."""
    global _WORKER_STATE
    assert _WORKER_STATE is not None, "the pool initializer did not run"
    if isinstance(_WORKER_STATE, bytes):
        _WORKER_STATE = unpack(_WORKER_STATE)
    return run_job(*_WORKER_STATE, job)


class ProcessExecutor:
    """A local process pool; the model and data go to each worker once, by its initializer.

    Workers start with "forkserver" (or "spawn" where that is missing), never "fork":
    forking a process in which torch has started threads can deadlock. Each worker uses
    `cpu_count // workers` torch threads so the workers do not fight over cores.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)

    def run(self, model: nn.Module, data: EvalData, settings: ScanSettings, jobs: Sequence[ScanJob]) -> JobResults:
        try:
            payload = portable(model, data, settings)
        except Exception as error:  # a model class defined inline, a TorchScript module, an open handle
            raise ExecutorError(
                f"This model cannot be sent to worker processes ({error}); scan with SerialExecutor() instead."
            ) from error
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(jobs)) or 1,
            mp_context=_start_context(),
            initializer=_init_worker,
            initargs=(payload, threads),
        )
        try:
            pending: dict[Future, ScanJob] = {pool.submit(_worker_job, job): job for job in jobs}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    job = pending.pop(future)
                    yield job, future.result()
        except BrokenProcessPool as error:
            raise ExecutorError(f"A scan worker process died ({error}); try SerialExecutor().") from error
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _start_context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["torch", "prune_engine"])
        return context
    return multiprocessing.get_context("spawn")


class RayExecutor:
    """Runs the jobs as Ray tasks, on a cluster at `address` or on the Ray this process has started.

    The model, the data and the settings are put into Ray's object store once; every
    task receives their references. Ray workers must be able to import `prune_engine`
    and the model's class: install PruneScope on the cluster, or pass
    `runtime_env={"py_modules": [...]}`. Connecting is kept for later scans; `close()`
    disconnects if this executor connected.
    """

    def __init__(
        self,
        address: str | None = None,
        runtime_env: dict[str, Any] | None = None,
        cpus_per_task: float = 1,
        init_options: dict[str, Any] | None = None,
        gpus_per_task: float = 0,
    ) -> None:
        self.address = address
        self.runtime_env = runtime_env
        self.cpus_per_task = cpus_per_task
        self.gpus_per_task = gpus_per_task
        self.init_options = dict(init_options or {})
        self._connected_here = False

    def run(self, model: nn.Module, data: EvalData, settings: ScanSettings, jobs: Sequence[ScanJob]) -> JobResults:
        ray = _import_ray()
        self._connect(ray)
        if self.gpus_per_task > ray.cluster_resources().get("GPU", 0):
            raise ExecutorError(
                f"Each scan task asks for {self.gpus_per_task} GPU, but the Ray cluster has "
                f"{ray.cluster_resources().get('GPU', 0):g}; move the model to the CPU or add GPU workers."
            )
        payload_ref = ray.put(portable(model, data, settings))
        task = ray.remote(num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task, max_retries=1)(_ray_job)
        threads = max(1, math.floor(self.cpus_per_task))
        pending = {task.remote(payload_ref, job, threads): job for job in jobs}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(done[0])
                yield job, ray.get(done[0])
        except ray.exceptions.RayError as error:
            raise ExecutorError(f"The Ray cluster could not run a scan job: {error}") from error
        finally:
            for ref in pending:
                ray.cancel(ref)

    def close(self) -> None:
        """Disconnect from Ray if this executor connected (a Ray it found running stays)."""
        if self._connected_here:
            _import_ray().shutdown()
            self._connected_here = False

    def _connect(self, ray: Any) -> None:
        if ray.is_initialized():
            return
        try:
            ray.init(address=self.address, runtime_env=self.runtime_env, **self.init_options)
        except Exception as error:  # ray raises ConnectionError, RuntimeError, ValueError… for a bad address
            raise ExecutorError(
                f"Could not connect to Ray at {self.address or 'a new local instance'}: {error}"
            ) from error
        self._connected_here = True


def _ray_job(payload: bytes, job: ScanJob, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    return run_job(*unpack(payload), job)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as error:
        raise ExecutorError(
            "Scanning on a cluster needs Ray: install ray (pip install 'ray==2.60.0'), or unset "
            f"{RAY_ADDRESS_ENV} to scan on this machine."
        ) from error
    return ray


def default_executor(job_count: int, device: str = "cpu") -> ScanExecutor:
    """Ray when `PRUNESCOPE_RAY_ADDRESS` is set; else a process pool for big scans of a CPU
    model on a multi-core machine; else in-process (always for a model on an accelerator,
    which worker processes would only queue on)."""
    address = os.environ.get(RAY_ADDRESS_ENV)
    if address:
        return RayExecutor(address=address, gpus_per_task=0 if torch.device(device).type == "cpu" else 1)
    if torch.device(device).type == "cpu" and (os.cpu_count() or 1) > 1 and job_count >= POOL_MIN_JOBS:
        return ProcessExecutor()
    return SerialExecutor()
