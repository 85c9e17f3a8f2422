"""numpy's BLAS on one thread while speech work runs, safely when several threads do speech work at once.

Why one thread: the recogniser's mel features go through a BLAS product whose rounding depends on
the BLAS thread count, and Whisper's words depend on that rounding (a different count turned
"all right" into "alright" and moved every word's probability on a benchmark call); the diarizer's
small matrices are also faster on one thread (BENCHMARKS.md).

Why not ``threadpoolctl.threadpool_limits`` around each call: the BLAS thread count belongs to the
whole process, and each ``threadpool_limits`` restores, on exit, the count it found on entry. With
two files in flight (``[run] threads = 2``), the file that finished first put BLAS back to two
threads while the other was still computing features, so the second file's words came out
differently from a run of that file alone. :func:`one_blas_thread` counts the threads inside it:
the first one in pins BLAS to one thread, the last one out restores what was there before, and
neither can be silently ignored because another thread "controls" the pool (:func:`_unclaim`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["one_blas_thread"]


class _Pin:
    """The process-wide pin: how many threads are inside :func:`one_blas_thread`, and the limiter
    that restores BLAS's thread count when the last one leaves."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.limiter: Any = None


# The BLAS thread pool is per process, so the pin that guards it is too (one object, never
# reassigned; its state is only the count of threads inside and the limiter to undo).
_PIN = _Pin()


def _unclaim() -> None:
    """Let the next limit take effect from whichever thread makes it.

    threadpoolctl 3.8+ lets only one "controlling" thread change OpenBLAS's shared pool and silently
    ignores the others; the main thread, once it has set a limit, keeps that role for good. Files
    transcribed on worker threads (Prefect's task threads, ``[run] threads``) then found their pin
    ignored and ran the mel product on two BLAS threads, so their words differed from the same file
    transcribed on the main thread. Older threadpoolctl has no such rule (and no such method).
    """
    import threadpoolctl

    controller = getattr(threadpoolctl, "OpenBLASController", None)
    clear = getattr(controller, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the body with numpy's BLAS on one thread, however many threads are inside at once."""
    from threadpoolctl import threadpool_limits

    with _PIN.lock:
        if _PIN.users == 0:
            _unclaim()
            _PIN.limiter = threadpool_limits(limits=1, user_api="blas")
            _unclaim()
        _PIN.users += 1
    try:
        yield
    finally:
        with _PIN.lock:
            _PIN.users -= 1
            if _PIN.users == 0:
                _unclaim()
                _PIN.limiter.restore_original_limits()
                _unclaim()
                _PIN.limiter = None
