"""The doors first: media work waits while the doors take in a burst, never longer than the
hold, and not at all for a trickle or with the hold off."""

from __future__ import annotations

import asyncio

from relay import metrics
from relay.doors_first import QUIET, RATE, WINDOW, DoorsFirst

PHOTO = 3_200_000


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _started(doors: DoorsFirst) -> asyncio.Task[None]:
    return asyncio.ensure_future(doors.wait(poll=0.001))


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.002)


def test_a_burst_holds_media_work_until_the_doors_are_quiet() -> None:
    async def scenario() -> None:
        clock = Clock()
        doors = DoorsFirst(hold=5.0, clock=clock)
        for _ in range(4):  # four photos within a moment: 25.6 MB/s
            doors.took(PHOTO)
        before = metrics.doors_first_held._value.get()
        waiting = _started(doors)
        await _settle()
        assert not waiting.done()
        clock.now += QUIET / 2
        doors.took(PHOTO)  # the burst goes on
        await _settle()
        assert not waiting.done()
        clock.now += QUIET / 2
        await _settle()
        assert not waiting.done()
        clock.now += QUIET  # nothing came for a moment: the burst is over...
        assert clock.now - 1000.0 < WINDOW  # ...though it is all still in the window
        await _settle()
        assert waiting.done()
        assert metrics.doors_first_held._value.get() > before

    asyncio.run(scenario())


def test_a_trickle_holds_nothing() -> None:
    async def scenario() -> None:
        clock = Clock()
        doors = DoorsFirst(hold=5.0, clock=clock)
        # A phone on a mobile network: a photo a second, 3.2 MB/s, far below RATE.
        assert PHOTO / 1.0 < RATE
        for _ in range(10):
            doors.took(PHOTO)
            clock.now += 1.0
            waiting = _started(doors)
            await _settle()
            assert waiting.done()

    asyncio.run(scenario())


def test_a_stream_longer_than_the_hold_is_processed_beside_it_then_held_again() -> None:
    async def scenario() -> None:
        clock = Clock()
        doors = DoorsFirst(hold=2.0, clock=clock)
        doors.took(4 * PHOTO)
        waiting = _started(doors)
        # The doors go on taking 25.6 MB/s for 3 s: held for 2 of them, then let through.
        for _ in range(30):
            clock.now += 0.1
            doors.took(PHOTO)
            await _settle()
            if waiting.done():
                break
        assert waiting.done()
        assert 2.0 <= clock.now - 1000.0 < 2.2
        # Still streaming: later work is not held either.
        doors.took(4 * PHOTO)
        later = _started(doors)
        await _settle()
        assert later.done()
        # The doors fall quiet, then a new burst: held again.
        clock.now += 2 * WINDOW
        doors.took(4 * PHOTO)
        again = _started(doors)
        await _settle()
        assert not again.done()
        clock.now += 2 * WINDOW
        await _settle()
        assert again.done()

    asyncio.run(scenario())


def test_pauses_within_a_stream_do_not_restart_its_hold() -> None:
    """A stream with pauses longer than QUIET between its posts (one big file every 0.2 s):
    media work starts in the pauses, and once the stream has gone on for ``hold`` seconds it
    is not held after its posts either, as any stream past the hold."""

    async def scenario() -> None:
        clock = Clock()
        doors = DoorsFirst(hold=2.0, clock=clock)
        step = 0.2
        assert QUIET < step < WINDOW and 3 * PHOTO > RATE * WINDOW  # each post a burst
        for n in range(15):  # 3 s of it
            doors.took(3 * PHOTO)
            after_a_post = _started(doors)
            await _settle()
            assert after_a_post.done() == (clock.now - 1000.0 >= 2.0), n
            clock.now += QUIET + 0.01
            in_the_pause = _started(doors)
            await _settle()
            assert in_the_pause.done(), n
            clock.now += step - QUIET - 0.01

    asyncio.run(scenario())


def test_with_the_hold_off_nothing_waits() -> None:
    async def scenario() -> None:
        doors = DoorsFirst(hold=0.0, clock=Clock())
        doors.took(100 * PHOTO)
        assert not doors.busy()
        waiting = _started(doors)
        await _settle()
        assert waiting.done()

    asyncio.run(scenario())
