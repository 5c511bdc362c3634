"""The one event loop, in one daemon thread, that every endpoint scorer's requests run on.

Why a loop of our own: an `httpx.AsyncClient` is bound to the loop it first ran on, so a
client per caller loop leaks a client and its sockets for every `asyncio.run(...)` (the
client also keeps its loop alive). Here each scorer has one client on this loop, whatever
loop or thread calls it, and `asyncio.wait_for` gives every request and every call a total
deadline, which httpx's per-read timeouts cannot (a server dripping one byte at a time
never trips them). Sync callers block on the result; async callers await it, and cancelling
them cancels the work here.

After `fork` the thread is gone in the child; `loop()` notices (pid changed) and starts a new
one, and scorers make new clients for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_pid: int | None = None


def loop() -> asyncio.AbstractEventLoop:
    """The shared loop, started on first use (and again in a forked child)."""
    global _loop, _thread, _pid
    with _lock:
        if _loop is None or _pid != os.getpid() or not (_thread and _thread.is_alive()):
            new = asyncio.new_event_loop()
            thread = threading.Thread(target=new.run_forever, name="crossrank-http", daemon=True)
            thread.start()
            _loop, _thread, _pid = new, thread, os.getpid()
        return _loop


def in_loop_thread() -> bool:
    return _thread is not None and threading.current_thread() is _thread


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the shared loop and wait for its result (from any thread but its own)."""
    if in_loop_thread():
        coro.close()
        raise RuntimeError("a sync endpoint call cannot be made from crossrank's HTTP loop")
    future = asyncio.run_coroutine_threadsafe(coro, loop())
    try:
        return future.result()
    except BaseException:  # KeyboardInterrupt in the caller: stop the work too
        future.cancel()
        raise


async def arun(coro: Coroutine[Any, Any, T]) -> T:
    """Await `coro` run on the shared loop; cancelling the caller cancels it."""
    future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, loop())
    return await asyncio.wrap_future(future)


def close_soon(client: Any, owner_loop: asyncio.AbstractEventLoop) -> None:
    """Close an `httpx.AsyncClient` on its loop without waiting (a scorer was collected)."""
    if owner_loop.is_closed() or _pid != os.getpid():
        return
    with contextlib.suppress(RuntimeError):  # the loop is shutting down with the interpreter
        asyncio.run_coroutine_threadsafe(client.aclose(), owner_loop)
