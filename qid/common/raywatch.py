"""A watchdog for a private local Ray cluster: nothing of it outlives its driver.

`ray.shutdown()` (a normal exit, an exception, Ctrl-C) stops the cluster a driver started. A driver killed with
SIGKILL (or by the out-of-memory killer) never runs it: Ray's GCS and raylet notice and exit, but the dashboard and
runtime-env agents, re-parented to init and renamed `ray::DashboardAgent` / `ray::RuntimeEnvAgent`, keep running
for a long time (measured: still alive 30 s later). Their command lines no longer name the session, so they
cannot be found afterwards; the watchdog therefore records the driver's descendants while the driver lives and,
once it is gone, terminates those that are still running (SIGTERM, then SIGKILL after `GRACE_S`).

`start()` spawns the watchdog as a detached process (its own session, so the driver's Ctrl-C does not reach it)
and returns once the watchdog has recorded the cluster's processes (a driver killed at once is covered too);
the watchdog exits by itself once the driver has gone and the descendants are stopped. psutil's process handles compare the
creation time, so a recycled process id is never killed.

    python -m qid.common.raywatch DRIVER_PID        # what start() runs
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

POLL_S = 0.5   # how often the driver is checked and its descendants listed
GRACE_S = 3.0  # between SIGTERM and SIGKILL


def start(driver_pid: int | None = None) -> subprocess.Popen:
    """Spawn the watchdog of `driver_pid` (default: this process); returns its handle."""
    driver_pid = os.getpid() if driver_pid is None else int(driver_pid)
    watchdog = subprocess.Popen([sys.executable, "-m", "qid.common.raywatch", str(driver_pid)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True, text=True)
    watchdog.stdout.readline()  # "ready" after its first look at the descendants (or EOF if it could not start)
    watchdog.stdout.close()
    return watchdog


def _alive(process) -> bool:
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def watch(driver_pid: int, poll_s: float = POLL_S, grace_s: float = GRACE_S, ready=lambda: None) -> list[int]:
    """Wait for the driver to end, then stop its recorded descendants; returns the ids of those it had to stop.
    `ready` is called once, after the first list of descendants is taken."""
    import psutil

    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return []
    me = os.getpid()
    descendants: dict[int, psutil.Process] = {}
    while _alive(driver):
        try:
            for child in driver.children(recursive=True):
                if child.pid != me:
                    descendants.setdefault(child.pid, child)
        except psutil.Error:
            pass
        if ready is not None:
            ready()
            ready = None
        time.sleep(poll_s)
    left = [process for process in descendants.values() if _alive(process)]
    for process in left:
        try:
            process.terminate()
        except psutil.Error:
            pass
    _, still = psutil.wait_procs(left, timeout=grace_s)
    for process in still:
        try:
            process.kill()
        except psutil.Error:
            pass
    return [process.pid for process in left]


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        print("usage: python -m qid.common.raywatch DRIVER_PID", file=sys.stderr)
        raise SystemExit(2)
    def _ready():
        print("ready", flush=True)
        sys.stdout.close()

    watch(int(sys.argv[1]), ready=_ready)
