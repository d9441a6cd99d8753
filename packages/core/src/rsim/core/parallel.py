"""Dask helpers: a local cluster by default, a remote scheduler when an address is given."""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")
R = TypeVar("R")


@contextmanager
def dask_client(scheduler: str | None = None, n_workers: int | None = None, *, processes: bool = True) -> Iterator[Any]:
    """Open a ``distributed.Client``.

    Args:
        scheduler: Address of a running scheduler (``tcp://host:8786``). ``None`` starts a local cluster.
        n_workers: Workers of the local cluster (default: one per core). Ignored with ``scheduler``.
        processes: Use worker processes (``True``) or threads in this process for the local cluster.

    Yields:
        A connected ``distributed.Client``; the local cluster is shut down on exit.
    """
    from distributed import Client, LocalCluster

    if scheduler is not None:
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=":0",  # a free port: concurrent local clusters never collide on 8787
        silence_logs=40,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@dataclass(frozen=True)
class _RemoteError:
    """An exception raised on a worker, carried back as plain data.

    Exceptions that chain GDAL/rasterio errors do not always unpickle, and Dask then hands back a bare
    ``Exception``; carrying type and message keeps the error's type and text intact across any scheduler.
    """

    module: str
    qualname: str
    message: str
    remote_traceback: str


def _guarded(fn: Callable[[Any], Any], item: Any) -> Any:
    try:
        return fn(item)
    except Exception as exc:
        return _RemoteError(type(exc).__module__, type(exc).__qualname__, str(exc), traceback.format_exc())


def _reraise(error: _RemoteError) -> None:
    exc: BaseException
    try:
        cls = importlib.import_module(error.module)
        for part in error.qualname.split("."):
            cls = getattr(cls, part)
        exc = cls(error.message)  # type: ignore[operator]
    except Exception:
        exc = RuntimeError(f"{error.qualname}: {error.message}")
    raise exc from RuntimeError("raised on a Dask worker:\n" + error.remote_traceback)


def progress_bar(description: str, total: int, *, disable: bool = False) -> Progress:
    """Return a rich progress bar (not yet started) with count, elapsed and remaining time."""
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=disable,
    )
    progress.add_task(description, total=total)
    return progress


def iter_as_completed(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    client: Any,
    description: str,
    show_progress: bool = True,
    weights: Sequence[int] | None = None,
) -> Iterator[tuple[int, R]]:
    """Submit ``fn(item)`` for every item and yield ``(index, result)`` as tasks finish.

    A rich progress bar advances with each finished task (by ``weights[i]`` when given, e.g. the patches in a
    chunk). A task's exception is re-raised here with its type and message, the worker traceback as its cause.
    """
    from distributed import as_completed

    futures = [client.submit(_guarded, fn, item, pure=False) for item in items]
    index_of = {future.key: i for i, future in enumerate(futures)}
    total = sum(weights) if weights is not None else len(futures)
    with progress_bar(description, total, disable=not show_progress) as progress:
        for future in as_completed(futures):
            result = future.result()
            if isinstance(result, _RemoteError):
                _reraise(result)
            i = index_of[future.key]
            progress.advance(progress.task_ids[0], weights[i] if weights is not None else 1)
            yield i, result
            future.release()


def map_with_progress(
    fn: Callable[[T], R], items: Iterable[T], *, client: Any, description: str, show_progress: bool = True
) -> list[R]:
    """Run ``fn`` on every item through ``client`` with a progress bar; results keep the input order."""
    seq = list(items)
    results: list[Any] = [None] * len(seq)
    for i, result in iter_as_completed(fn, seq, client=client, description=description, show_progress=show_progress):
        results[i] = result
    return results
