"""Test-only hooks of the preparation engine: stop at a known point so a test can kill the run there.

`DFAKE_TEST_HALT_AFTER_SHARDS=N` makes the engine, once N shards of this run are written, print the line
`dfake-test: halted after N shards` on stderr and then block forever (never returning, never writing
more). A test waits for that line (a blocking read, not a poll) and SIGKILLs the process: the state on
disk is then exactly N finished shards, whatever the machine's load. Use it with `--workers 1`: with a
pool the other workers keep going while the parent blocks. Unset (always, outside tests): no effect.
"""

from __future__ import annotations

import os
import sys
import threading

HALT_AFTER_SHARDS = "DFAKE_TEST_HALT_AFTER_SHARDS"
HALTED_LINE = "dfake-test: halted after {n} shards"


def after_shard(written: int) -> None:
    """Call after each shard this run wrote (`written` = how many so far); halts when the test asks."""
    wanted = os.environ.get(HALT_AFTER_SHARDS)
    if not wanted or written != int(wanted):
        return
    print(HALTED_LINE.format(n=written), file=sys.stderr, flush=True)
    threading.Event().wait()  # block until killed
