"""The doors first: while the doors take in a burst, media work waits, for a while.

On a small machine the media workers (libvips, ffmpeg) and the doors share the cores, and the
workers' lowest priority (nice 19) does not keep them out of the doors' way: the bare aiohttp
server beside pyvips at nice 19 took photo uploads at 0.58-0.82× of its rate on an idle
machine (bench/README.md, ``http-busy``), for what the two share below the scheduler (caches,
memory bandwidth, the host's cores). So while the doors take in more than ``rate`` bytes a
second, no new media work starts: the uploads of a batch are answered at the door's own speed,
and their processing follows. A stream that goes on longer than ``hold`` seconds is not held
past that: the work goes on beside it until the doors have been quiet for a moment, and a phone
trickling a clip over a mobile network never comes near ``rate``.

Media work that has started is never stopped: a photo's renditions take a fraction of a second.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from relay import metrics

WINDOW = 0.5
"""Seconds over which the doors' rate is taken."""
RATE = 16e6
"""Bytes a second above which the doors are taking in a burst: a few photos at once over a
local network; a phone on a mobile network sends a few MB a second at most."""
QUIET = 0.15
"""Seconds without a post taken in after which media work may start, whatever the window
holds: held to the window's end, the cores stood idle for most of half a second after every
burst (half of them also while it ran: a burst waits on the disk as much as on the cores).
The burst itself goes on while the window holds it, so its ``hold`` keeps counting."""


class DoorsFirst:
    def __init__(
        self, hold: float, rate: float = RATE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        """Bytes a second taken in by the doors above which media work waits."""
        self.hold = hold
        """The longest a burst holds media work, in seconds; 0: never (and nothing is kept)."""
        self._clock = clock
        self._taken: deque[tuple[float, int]] = deque()
        self._last = float("-inf")
        self._in_window = 0
        self._holding_since: float | None = None

    def took(self, size: int) -> None:
        """A door accepted ``size`` bytes (a post committed)."""
        if self.hold <= 0 or size <= 0:
            return
        if not self.busy():
            self._holding_since = None  # the doors were quiet: whatever comes is a new burst
        self._last = self._clock()
        self._taken.append((self._last, size))
        self._in_window += size
        if self._holding_since is None and self.busy():
            self._holding_since = self._last  # the burst's hold runs from its start

    def busy(self) -> bool:
        """The doors took in more than ``rate`` over the last ``WINDOW`` seconds."""
        since = self._clock() - WINDOW
        while self._taken and self._taken[0][0] < since:
            self._in_window -= self._taken.popleft()[1]
        return self._in_window > self.rate * WINDOW

    def _holding(self) -> bool:
        """Whether to hold now: the doors busy and taking something in this moment
        (``QUIET``), and this burst not yet held for ``hold``."""
        if not self.busy():
            self._holding_since = None
            return False
        now = self._clock()
        if self._holding_since is None:
            self._holding_since = now
        return now - self._holding_since < self.hold and now - self._last < QUIET

    async def wait(self, poll: float = 0.05) -> None:
        """Return when media work may start."""
        if not self._holding():
            return
        started = time.monotonic()
        try:
            while self._holding():
                await asyncio.sleep(poll)
        finally:
            metrics.doors_first_held.inc(time.monotonic() - started)
