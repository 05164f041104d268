"""What this process uses and has room for: resident memory, open file descriptors, CPU seconds, and how many more
peers fit within its fd limit (docs/DESIGN.md §3). Reads /proc and getrusage; no sockets.
"""
from __future__ import annotations

import os
import resource

#: Every peer holds two sockets (server and client), one fd each (their mailboxes, docs/DESIGN.md §3); over tcp
#: each socket also holds its listening socket.
FDS_PER_PEER = {"inproc": 2, "tcp": 4}
#: Fds kept free for connections: a walking client's LRU (both ends when in one process), the supervisor's command
#: window, control and link sockets, logs.
FD_HEADROOM = 768


def open_fds() -> int:
    """Open file descriptors of this process (Linux /proc; 0 where unavailable)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def process_usage() -> dict:
    """This process's resident memory (now and peak), open fds and CPU seconds (user + system) so far."""
    usage, rss = resource.getrusage(resource.RUSAGE_SELF), rss_bytes()
    # ru_maxrss (KiB) and statm count slightly differently: the peak is never shown below the current figure
    return {"rss_bytes": rss, "peak_rss_bytes": max(usage.ru_maxrss * 1024, rss), "fds": open_fds(),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3)}


def peer_room(transport: str) -> int:
    """How many more peers on ``transport`` this process can hold within its fd limit (RLIMIT_NOFILE, soft)."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if limit == resource.RLIM_INFINITY:
        limit = 1 << 20
    return max(0, (limit - open_fds() - FD_HEADROOM) // FDS_PER_PEER[transport])
