"""Run one measurement in a spawned process, so its peak memory is its own."""

from __future__ import annotations

import multiprocessing
import resource


def peak_rss_bytes() -> int:
    """Peak resident memory of the calling process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def in_fresh_process(target, *args) -> dict:
    """Call target(*args, queue) in a spawned process and return what it put on the queue."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result
