"""Measuring helpers: a function in a forked child or a command, each with its own peak RSS; medians."""

from __future__ import annotations

import os
import pickle
import resource
import statistics
import subprocess
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any


def in_child(function: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """``function(*args)`` in a forked child: (its result, the child's peak RSS in MB, its RSS at the start).

    The child starts with the parent's memory (imports included), like a task process forked by a worker;
    peak minus start is what the function itself added.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        try:
            payload = pickle.dumps(("ok", (rss_mb(), function(*args))))
        except BaseException:
            payload = pickle.dumps(("error", traceback.format_exc()))
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(payload)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        status, value = pickle.loads(pipe.read())
    _, _, usage = os.wait4(pid, 0)
    if status != "ok":
        raise RuntimeError(f"{getattr(function, '__name__', function)} failed in the child:\n{value}")
    start, result = value
    return result, usage.ru_maxrss / 1024, start


def run_command(
    command: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None
) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, output) of a command; the peak is the largest of the process and the
    children it waited for (the kernel's wait4 accounting)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}:\n{output[-4000:]}")
    return seconds, usage.ru_maxrss / 1024, output


def rss_mb() -> float:
    """This process's resident set size now, in MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))
