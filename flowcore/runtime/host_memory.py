"""Memory available to this process now: what the size checks and the activation cap compare against.

``MemAvailable`` of ``/proc/meminfo`` on Linux (what the kernel can hand out without swapping: free
memory plus reclaimable caches), lowered to the room left under a cgroup memory limit where one is set
(a container: v2 ``memory.max − memory.current``, v1 ``memory.limit_in_bytes − memory.usage_in_bytes``);
elsewhere ``os.sysconf`` gives the free physical pages (``SC_AVPHYS_PAGES`` × ``SC_PAGE_SIZE``), a
smaller, safe figure. Where neither is known: None. psutil is not a dependency.
"""

from __future__ import annotations

import os

__all__ = ["available_memory"]


def available_memory() -> int | None:
    """Bytes of memory available now, or None where it cannot be read.

    Returns
    -------
    int or None
        ``MemAvailable`` (Linux ``/proc/meminfo``), else free physical pages × page size.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    room = _cgroup_room()
                    return avail if room is None else min(avail, room)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (v2, no limit) reads as None


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup memory limit, or None where no limit is set."""
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        lim, used = _read_int(limit), _read_int(usage)
        if lim is not None and used is not None and lim < 1 << 60:  # v1 reports "no limit" as ~2**63
            return max(lim - used, 0)
    return None
