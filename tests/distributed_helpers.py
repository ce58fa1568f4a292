"""Spawning gloo ranks for the distributed tests (tests/test_distributed_uneven.py,
tests/test_distributed_empty_scoring.py): one free port, one process per rank, results through a queue,
and a hang that surfaces as a timeout instead of a stuck test run."""
from __future__ import annotations

import multiprocessing
import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_ranks(worker, world: int, timeout: float) -> list:
    """Run ``worker(rank, port, queue)`` in ``world`` spawned processes; each puts ``(rank, dict)`` on the
    queue, with ``{"error": ...}`` when it failed.  Returns the dicts in rank order; a rank that does not
    answer within ``timeout`` seconds fails the test (``queue.Empty``), and every process is reaped."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=worker, args=(r, port, queue)) for r in range(world)]
    for p in procs:
        p.start()
    got = {}
    try:
        for _ in range(world):
            r, out = queue.get(timeout=timeout)  # a hang surfaces here as queue.Empty
            got[r] = out
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    for r, out in got.items():
        assert "error" not in out, (r, out["error"])
    return [got[r] for r in range(world)]
