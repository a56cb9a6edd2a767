"""A small bounded thread pool for the embedded models, shared by every call in the process.

Why: whisper, llama.cpp and onnxruntime block for tens to hundreds of milliseconds per call, so they must run
off the event loop; and the target machine has 2 cores, so concurrent calls must queue rather than start
more inference than there are cores. Each job names a :class:`Lane` (one per loaded model, with the number
of jobs that model can serve at once): a worker takes the oldest queued job whose lane has room, so a long
LLM generation never blocks a TTS job behind it. The queue is bounded; a full queue is a retryable
ProviderError, so the engine can fall back to another provider instead of waiting for seconds.
The libraries release the GIL while they compute, so threads (not processes) are enough.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from providers.base import ProviderError

T = TypeVar("T")
PROVIDER = "local"
_DONE = object()


@dataclass(eq=False)
class Lane:
    """Jobs for one model; at most ``capacity`` of them run at once (the model's own limit)."""

    name: str
    capacity: int = 1
    busy: int = 0  # guarded by the pool's lock
    urgent: bool = False  # its jobs are on a caller's critical path: long jobs step aside (yield_to_urgent)


@dataclass(eq=False)
class _Job:
    fn: Callable[[], Any]
    lane: Lane
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class WorkerPool:
    def __init__(self, workers: int, max_queued: int) -> None:
        self.workers = max(1, workers)
        self.max_queued = max(1, max_queued)
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._threads: list[threading.Thread] = []
        self._running: list[Lane] = []  # the lane of each running job

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    def submit(self, fn: Callable[[], T], lane: Lane) -> asyncio.Future[T]:
        """Queue ``fn``; cancelling the returned future before it starts removes it from the queue."""
        loop = asyncio.get_running_loop()
        job = _Job(fn, lane, loop, loop.create_future())
        with self._cond:
            if len(self._queue) >= self.max_queued:
                raise ProviderError(PROVIDER, "the embedded models are busy (queue full)", retryable=True, status=503)
            self._queue.append(job)
            while len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name=f"voicex-local-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
            self._cond.notify_all()
        job.future.add_done_callback(lambda future: self._forget(job) if future.cancelled() else None)
        return job.future

    def yield_to_urgent(self, max_wait: float) -> float:
        """Block the calling worker while an urgent job runs (at most ``max_wait`` s); returns the time waited.

        Why: on 2 cores a streaming LLM and the Piper or Whisper job a caller is waiting for would share the
        cores and both be slow. The LLM is ahead of playback anyway, so it pauses between tokens and the
        urgent job gets the machine. Only running urgent jobs count: a queued one may have no worker free.
        """
        started = time.monotonic()
        with self._cond:
            self._cond.wait_for(lambda: not any(job_lane.urgent for job_lane in self._running), max_wait)
        return time.monotonic() - started

    def wait_idle(self, timeout: float) -> bool:
        """Block until no job runs and none is queued (at most ``timeout`` s); True if the pool went idle.

        Why: the workers are daemon threads inside native code (llama.cpp, ctranslate2, onnxruntime); if the
        interpreter exits while one is loading or computing, the process can crash on the way out.
        """
        with self._cond:
            return self._cond.wait_for(lambda: not self._running and not self._queue, timeout)

    def _forget(self, job: _Job) -> None:
        with self._cond, contextlib.suppress(ValueError):
            self._queue.remove(job)

    def _take(self) -> _Job:
        with self._cond:
            while True:
                for index, job in enumerate(self._queue):
                    if job.lane.busy < job.lane.capacity:
                        del self._queue[index]
                        job.lane.busy += 1
                        self._running.append(job.lane)
                        return job
                self._cond.wait()

    def _work(self) -> None:
        while True:
            job = self._take()
            result: Any = None
            error: BaseException | None = None
            try:
                result = job.fn()
            except BaseException as exc:  # handed to the awaiting coroutine
                error = exc
            finally:
                with self._cond:
                    job.lane.busy -= 1
                    self._running.remove(job.lane)
                    self._cond.notify_all()
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                job.loop.call_soon_threadsafe(_settle, job.future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def cpu_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def get_pool() -> WorkerPool:
    """The process-wide pool: one worker per core (at most 4), a few jobs of queue per worker."""
    global _pool
    with _pool_lock:
        if _pool is None:
            workers = min(cpu_count(), 4)
            _pool = WorkerPool(workers=workers, max_queued=4 * workers)
        return _pool


def drain(timeout: float) -> bool:
    """Wait for the process-wide pool (if one was ever started) to finish its jobs; see WorkerPool.wait_idle."""
    with _pool_lock:
        pool = _pool
    return True if pool is None else pool.wait_idle(timeout)


def wrap_error(what: str, exc: BaseException) -> ProviderError:
    """Library exceptions become ProviderErrors: a local model failing mid-call is worth a fallback."""
    if isinstance(exc, ProviderError):
        return exc
    return ProviderError(PROVIDER, f"{what} failed: {type(exc).__name__}: {exc}", retryable=True)


async def run(pool: WorkerPool, lane: Lane, fn: Callable[[], T], what: str) -> T:
    """Run one blocking job in the pool and wait for its result."""
    return await wait(pool.submit(fn, lane), what)


async def wait(future: asyncio.Future[T], what: str) -> T:
    """Await a submitted job: its exception becomes a ProviderError; cancelling dequeues it."""
    try:
        return await future
    except asyncio.CancelledError:
        future.cancel()
        raise
    except Exception as exc:
        raise wrap_error(what, exc) from exc


Produce = Callable[[Callable[[Any], None], threading.Event], None]


async def stream(pool: WorkerPool, lane: Lane, produce: Produce, what: str) -> AsyncIterator[Any]:
    """Run ``produce(emit, stop)`` in the pool and yield what it emits as it emits it.

    Leaving the iteration early (the caller barged in) sets ``stop``, which the producer checks between
    tokens or sentences, so the worker is free again within one step.
    """
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def emit(item: Any) -> None:
        if stop.is_set():
            return
        try:
            loop.call_soon_threadsafe(items.put_nowait, item)
        except RuntimeError:  # the loop is gone
            stop.set()

    future = pool.submit(lambda: produce(emit, stop), lane)
    future.add_done_callback(lambda _: items.put_nowait(_DONE))
    try:
        while (item := await items.get()) is not _DONE:
            yield item
        if future.cancelled():
            return
        if (error := future.exception()) is not None:
            raise wrap_error(what, error) from error
    finally:
        stop.set()
        future.cancel()
