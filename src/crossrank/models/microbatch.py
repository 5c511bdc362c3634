"""Micro-batching: concurrent calls on one shared model are scored in shared batches.

One `MicroBatcher` serves one loaded model (and its batching settings). Callers, from any
thread or coroutine, `submit` their already tokenized pairs and get a future. A single worker
thread takes the first waiting request, waits `wait_s` for others to join, then takes every
request queued so far and scores their pairs together: one length sort over all of them, so
batches are fuller and pad less than each call's own would. Requests that queue while the
model is busy join the next round, so under load the batches grow by themselves and a lone
call waits no more than `wait_s`.

If a shared round fails, each of its requests is retried on its own, so that one caller's
bad input never fails another caller's call.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

logger = logging.getLogger("crossrank")


class MicroBatcher:
    """Coalesces concurrent `submit` calls into shared runs of `run(items) -> results`."""

    def __init__(
        self, run: Callable[[list[Any]], Sequence[Any]], wait_s: float, name: str = "model"
    ) -> None:
        self._run = run
        self.wait_s = wait_s
        self.name = name
        self._queue: queue.SimpleQueue[tuple[list[Any], Future[list[Any]]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.requests = 0  # calls submitted
        self.rounds = 0  # shared runs made (fewer than requests when calls were coalesced)

    def submit(self, items: Sequence[Any]) -> Future[list[Any]]:
        """Queue `items` for scoring; the future resolves to their results, in order."""
        future: Future[list[Any]] = Future()
        self._ensure_worker()
        self._queue.put((list(items), future))
        return future

    def _ensure_worker(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(
                    target=self._loop, name=f"crossrank-microbatch-{self.name}", daemon=True
                )
                thread.start()
                self._thread = thread

    def close(self) -> None:
        """Stop the worker once the requests queued so far are served."""
        with self._start_lock:
            if self._thread is not None:
                self._queue.put(None)  # type: ignore[arg-type]
                self._thread = None

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            if self.wait_s > 0:
                time.sleep(self.wait_s)
            requests = [first]
            stop = False
            while True:
                try:
                    request = self._queue.get_nowait()
                except queue.Empty:
                    break
                if request is None:
                    stop = True
                    break
                requests.append(request)
            self._serve(requests)
            if stop:
                return

    def _serve(self, requests: list[tuple[list[Any], Future[list[Any]]]]) -> None:
        live = [(items, fut) for items, fut in requests if fut.set_running_or_notify_cancel()]
        if not live:
            return
        self.requests += len(live)
        self.rounds += 1
        items = [item for request_items, _ in live for item in request_items]
        try:
            results = list(self._run(items))
        except BaseException as exc:
            if len(live) == 1:
                live[0][1].set_exception(exc)
                return
            logger.debug("shared round of %d calls failed (%r); retrying each", len(live), exc)
            for request_items, fut in live:
                try:
                    fut.set_result(list(self._run(request_items)))
                except BaseException as one_exc:
                    fut.set_exception(one_exc)
            return
        start = 0
        for request_items, fut in live:
            fut.set_result(results[start : start + len(request_items)])
            start += len(request_items)
