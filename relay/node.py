"""Who holds a job: a random id for each start of a process, and a lock file that says whether
that process still runs.

Workers name their claims ``NODE:N``. Another machine's death is noticed only through its leases
running out: host names and pids say nothing (containers share both). On the same data folder,
though, a start can tell more: every running process holds an exclusive ``flock`` on
``nodes/NODE.lock`` there, which the kernel drops when the process dies, however it dies. A
start that can take the lock of another's file knows that process is gone, and frees its jobs at
once instead of when their leases lapse (a crash, then a restart, picks up where it was). A data
folder that is gone takes its lock files with it: those claims lapse like a dead machine's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from pathlib import Path

NODES = "nodes"


def start_node(data_dir: Path) -> tuple[str, int, list[str]]:
    """This process's id, the descriptor that holds its lock (keep it open while running), and
    the ids of processes that used this data folder and are gone (their files removed)."""
    folder = data_dir / NODES
    folder.mkdir(parents=True, exist_ok=True)
    node_id = secrets.token_hex(6)
    # Locked under a temporary name, then renamed: a lock file another start can see is
    # always locked by a live process, or by none.
    tmp = folder / f".{node_id}.tmp"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.replace(tmp, folder / f"{node_id}.lock")
    gone = []
    for path in folder.glob("*.lock"):
        if path.stem == node_id:
            continue
        try:
            other = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue  # another start found it gone first
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # running
        else:
            gone.append(path.stem)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        finally:
            os.close(other)
    return node_id, fd, gone


def stop_node(data_dir: Path, node_id: str, fd: int) -> None:
    """A clean stop: the file goes, then the lock."""
    with contextlib.suppress(FileNotFoundError):
        (data_dir / NODES / f"{node_id}.lock").unlink()
    os.close(fd)
