"""Where a sweep's tasks run: an embedded Dask ``LocalCluster``, an existing Dask cluster, any
``concurrent.futures.Executor``, or this process.

:func:`open_executor` turns the ``client`` argument of :func:`energyscope.sweep` into a
``concurrent.futures.Executor`` (a Dask ``Client`` through ``Client.get_executor``, whose futures are
``concurrent.futures`` futures), and closes what it opened itself. Dask is an optional extra
(``pip install "energyscope[dask]"``); only the Dask choices need it.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
from collections.abc import Iterator
from typing import Any

from energyscope.errors import BadArgumentError, EnergyscopeError

#: a task is tried this many times in all when the worker running it dies (Dask's ``retries`` + 1)
TASK_TRIES = 3


class DaskMissingError(EnergyscopeError, ImportError):
    """The Dask choice of a sweep was asked for and ``dask.distributed`` is not installed."""


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise DaskMissingError('sweeps on Dask need dask.distributed: pip install "energyscope[dask]" (or pass '
                               "client='serial' to run in this process, or any concurrent.futures.Executor)") from None
    return distributed


class SerialExecutor(cf.Executor):
    """Runs each task at once, in the calling process (no Dask needed; what ``client="serial"`` uses)."""

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future, as an executor does
            future.set_exception(exc)
        return future


@contextlib.contextmanager
def open_executor(client: Any = None, workers: int | None = None, threads: int = 1) -> Iterator[tuple[cf.Executor,
                                                                                                       str]]:
    """Yield ``(executor, description)`` for ``client``:

    * None: an embedded ``distributed.LocalCluster`` with ``workers`` worker processes (default: CPU count,
      at most 8), ``threads`` threads each (torch runs the task with the same count), closed on exit;
    * a scheduler address (``"tcp://host:8786"``) or a ``distributed.Client``: that cluster (an address is
      connected to and the connection closed on exit; a given Client is left open);
    * ``"serial"``: this process, one task after the other;
    * any ``concurrent.futures.Executor``: used as it is (left open).
    """
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise BadArgumentError(f"workers must be a positive integer, got {workers!r}")
    if client is not None and workers is not None and client != "serial":
        raise BadArgumentError("workers= sets the size of the embedded cluster; with client= the cluster is given")
    if client == "serial":
        yield SerialExecutor(), "this process (serial)"
        return
    if isinstance(client, cf.Executor):
        yield client, type(client).__name__
        return
    if client is None:
        distributed = _distributed()
        n = workers or max(1, min(8, os.cpu_count() or 1))
        import dask
        with contextlib.ExitStack() as stack:
            # the workers' statistical profiler samples every task's stack each 10 ms: 10-20 % of a task's time in
            # this Python-heavy code (measured), and the embedded cluster has no dashboard to show it on
            # and the nanny's MALLOC_TRIM_THRESHOLD_=65536 (glibc then returns freed memory at once and no longer
            # adapts its mmap threshold) made the interpretation stage 1.5 times slower (17 s -> 26 s on the digits
            # model): the workers get the other variables only (one BLAS/OpenMP thread each)
            environ = {k: v for k, v in (dask.config.get("distributed.nanny.pre-spawn-environ") or {}).items()
                       if k != "MALLOC_TRIM_THRESHOLD_"}
            stack.enter_context(dask.config.set({"distributed.worker.profile.enabled": False,
                                                 "distributed.nanny.pre-spawn-environ": environ}))
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=n, threads_per_worker=threads, processes=True, dashboard_address=None,
                silence_logs=40))
            dask_client = stack.enter_context(distributed.Client(cluster))
            yield _executor(dask_client), f"a local Dask cluster of {n} worker process{'es' if n != 1 else ''}"
        return
    distributed = _distributed()
    if isinstance(client, str):
        try:
            dask_client = distributed.Client(client, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise BadArgumentError(f"cannot reach the Dask scheduler at {client!r}: {exc}") from None
        with dask_client:
            yield _executor(dask_client), f"the Dask cluster at {client}"
        return
    if isinstance(client, distributed.Client):
        yield _executor(client), f"the Dask cluster at {client.scheduler.address}"
        return
    raise BadArgumentError(f"client must be None, 'serial', a Dask scheduler address, a distributed.Client or a "
                           f"concurrent.futures.Executor, got {type(client).__name__}")


def _executor(dask_client: Any) -> cf.Executor:
    """A Client's ``concurrent.futures`` face: distinct (impure) tasks, retried when their worker dies."""
    return dask_client.get_executor(pure=False, retries=TASK_TRIES - 1)


__all__ = ["DaskMissingError", "SerialExecutor", "TASK_TRIES", "open_executor"]
