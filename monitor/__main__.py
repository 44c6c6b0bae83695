"""The `monitor` program, also run as `python -m monitor`.

Its imports run with the garbage collector off: every object they make lives until the
program exits, so the collections they set off find nothing to free, and took a tenth of
their time (65 of 655 ms). Set aside afterwards (`gc.freeze`), those objects cost no
collection later.

Once a command has finished, the program ends without tearing the interpreter down: freeing
every module's objects one by one changes nothing outside the process, and took 25 ms of every
`check-now` (36 against 8 ms from the command's end to its parent seeing the process end,
medians of 8 first and 8 unchanged runs over 1,000 pages): 1.4% of a first run, 2.8% of an
unchanged one. Logs and output are flushed first. While another thread or a child process
still runs, the program takes Python's normal way out, which waits for them.
"""

import gc
import logging
import multiprocessing
import os
import sys
import threading
from contextlib import suppress


def program() -> None:
    gc.disable()
    from monitor.cli import main

    gc.freeze()
    gc.enable()
    try:
        main()
    except SystemExit as done:
        _end(done)


def _end(done: SystemExit) -> None:
    """Exit at once with `done`'s status, unless something is left to wait for."""
    status = 0 if done.code is None else done.code
    waiting = threading.active_count() > 1 or multiprocessing.active_children()
    if waiting or not isinstance(status, int):
        raise done
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a closed pipe: nothing to deliver to
            stream.flush()
    os._exit(status)


if __name__ == "__main__":
    program()
