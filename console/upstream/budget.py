"""Bound the memory of the answers being read at once, across every call of a client.

An answer is held in memory while it is read and parsed: up to `MAX_RESPONSE_BYTES` (256 MiB) per
call, for a stream without a length as for any other, which at concurrency 8 is 2 GB and at 64 far
more. So the calls of one client share `MAX_ANSWERS_BYTES` (512 MiB): each call counts the bytes
of its answer, and of the images it downloads, as it reads them, until the call is over; a call
whose next chunk would pass the total stops reading (the gateway is held back by TCP) until other
calls are over and give theirs back. The oldest call still reading always goes on, up to its own
cap, so the calls never all wait on each other: what is held is at most `MAX_ANSWERS_BYTES` plus
one answer's cap. A call that waits here is still under its profile's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator


class Share:
    """What one call holds of the budget; `await take(n)` before keeping `n` more bytes."""

    def __init__(self, budget: "AnswerBudget") -> None:
        self._budget = budget
        self.held = 0

    async def take(self, count: int) -> None:
        """Wait until `count` more bytes fit in the budget (at once for the oldest call), then count them."""
        await self._budget._take(self, count)


class AnswerBudget:
    """The bytes of answers that the calls of one client hold at once, and the calls waiting for room."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0  # the most ever held at once (for the figures)
        self._shares: list[Share] = []  # oldest first
        self._waiters: list[asyncio.Future] = []

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[Share]:
        """Count one call's answer against the budget while it is read; give it all back at the end."""
        share = Share(self)
        self._shares.append(share)
        try:
            yield share
        finally:
            self._shares.remove(share)
            self.held -= share.held
            share.held = 0
            self._wake()

    async def _take(self, share: Share, count: int) -> None:
        while not self._fits(share, count):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        share.held += count
        self.held += count
        self.peak = max(self.peak, self.held)

    def _fits(self, share: Share, count: int) -> bool:
        return self.held + count <= self.limit or share is self._shares[0]

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
