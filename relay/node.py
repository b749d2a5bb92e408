"""This node's identity: a random id kept in its data folder, held with a lock for as long as
the process runs.

Workers name their claims ``NODE:START:N``. Another node's death is noticed only through its
leases running out (containers share host names and pids, so neither says anything). A node
that starts again on the same data folder knows its previous life's claims by the id, and the
lock says that life is over: those jobs are free at once, not when their leases lapse. A node
whose data folder is gone comes back as a new node; its old claims lapse like a dead node's.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from pathlib import Path

NODE_FILE = "node.id"


class DataFolderInUse(RuntimeError):
    """Another running relay holds this data folder."""


def claim_data_folder(data_dir: Path) -> tuple[str, int]:
    """This node's id and the open descriptor that holds the folder's lock (keep it open).
    ``DataFolderInUse`` when another process holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / NODE_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataFolderInUse(
            f"another relay is running on the data folder {data_dir}: each node needs its own "
            "RELAY_DATA_DIR"
        ) from None
    node_id = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    if not node_id:
        node_id = secrets.token_hex(6)
        os.pwrite(fd, f"{node_id}\n".encode(), 0)
        os.fsync(fd)
    return node_id, fd
