"""Worker processes die with their parent: a SIGKILLed `dfake prepare` leaves no orphan decoding on.

On Linux the kernel does it: `prctl(PR_SET_PDEATHSIG, SIGKILL)` asks for SIGKILL when the parent exits
(then the parent is checked once more, in case it died before the request was made). Elsewhere a daemon
thread watches `os.getppid()` and exits the process when the parent is gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCH_SECONDS = 1.0  # the fallback watchdog's period (non-Linux only)


def die_with_parent(parent_pid: int) -> None:
    """Call first thing in a worker process; `parent_pid` is the parent's pid as the parent saw it."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent_pid:  # the parent died before we were armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch, args=(parent_pid,), daemon=True, name="dfake-parent-watch").start()


def _watch(parent_pid: int) -> None:
    stop = threading.Event()
    while not stop.wait(WATCH_SECONDS):
        if os.getppid() != parent_pid:
            os._exit(1)
