"""Running the emulator's asyncio loop so that stopping it always ends, within a bound.

``asyncio.run`` waits at its end for every task to finish after cancelling it and for the default
executor's threads (a name lookup can take the resolver's whole timeout); a stop must not hang on
either. ``run_bounded`` gives the tasks ``SETTLE`` seconds and never waits for the executor: its
threads end on their own and their answers go nowhere.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Coroutine, TypeVar

log = logging.getLogger(__name__)

SETTLE = 2.0  # seconds the cancelled tasks get to finish once the main coroutine has returned
T = TypeVar("T")


def run_bounded(main: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(thread_name_prefix="ecemu-lookup")
    loop.set_default_executor(executor)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_remaining(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    done, pending = loop.run_until_complete(asyncio.wait(tasks, timeout=SETTLE))
    for task in pending:
        log.warning("a task did not end within %.0f s of the stop and is left behind: %r", SETTLE, task)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler({"message": "task failed while stopping", "exception": task.exception(),
                                         "task": task})
