"""A script's own peak memory, for the benchmarks and scale runs that report it."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mib() -> float:
    """This process's peak resident memory, MiB.

    Linux keeps ``ru_maxrss`` across fork and exec, so a script started by a big process (pytest
    with models loaded) would report its parent's peak; ``VmHWM`` belongs to this address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
