"""Which server a read goes to. Pure: the managers feed it probe results and connection failures,
it keeps each replica's state and orders the candidates for one read.

Rules:
- only checkouts with intent read are routed here (no guessing from SQL text);
- a replica is a candidate while it is admitted (not ejected) and its lag is at most max_lag;
- with a read-your-writes position (the caller's last commit LSN), a replica whose last known
  replay LSN is behind it is a candidate only after a fresh check on the connection;
- the primary is always the last candidate, so with every replica out, reads go to the primary.

Lag ("how stale can a read be") is measured by the replica monitor, on its own connections,
once per monitor interval whatever the application's load:
- in the client, against the primary's WAL: each round records the primary's flush LSN with the
  time it was seen; the primary had WAL the replica has not replayed at least since the first
  sample beyond its replay LSN (a lower bound), and the replica had all the primary's WAL as of
  the last time the primary was seen at or before that LSN (an upper bound). Needs no clock
  agreement, and sees a replica that stopped receiving;
- on the replica: `now() - pg_last_xact_replay_timestamp()` while it has received WAL it has
  not replayed (0 when everything received is replayed), precise to the moment replay stopped.
The lag is the replica's own figure kept within the client's bounds: an idle primary's old last
commit does not make a healthy replica look late, and a paused replay is seen within one round.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

logger = logging.getLogger("dbops.pool")

PRIMARY = "primary"
_SHORT_PAGE_HEADER = 24  # SizeOfXLogShortPHD
_LONG_PAGE_HEADER = 40  # SizeOfXLogLongPHD, at the start of each WAL segment


def parse_lsn(text: str) -> int:
    """'16/B374D848' -> the 64-bit position."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def record_end(lsn: int, block_size: int = 8192, segment_size: int = 16 << 20) -> int:
    """An insert position as the end of the record before it.

    pg_current_wal_insert_lsn() points past a page header when the last record ended on a page
    boundary, while pg_last_wal_replay_lsn() is the end of the last record (the boundary). On an
    idle server the two would never meet; this moves such a position back to the boundary.
    """
    if lsn % segment_size == _LONG_PAGE_HEADER:
        return lsn - _LONG_PAGE_HEADER
    if lsn % block_size == _SHORT_PAGE_HEADER:
        return lsn - _SHORT_PAGE_HEADER
    return lsn


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


@dataclass
class ReplicaState:
    """What the router knows about one replica."""

    name: str
    admitted: bool = True
    ejected_until: float = 0.0
    failures: int = 0
    reason: str = ""
    replay_lsn: int | None = None
    lag: float | None = None
    checked_at: float = 0.0


class WalHistory:
    """The primary's flush LSNs as the monitor saw them, one sample per new position:
    [first seen, last seen, LSN]. Only the monitor records (once a round), so the history spans
    maxlen rounds whatever the application's load."""

    def __init__(self, maxlen: int = 4096) -> None:
        self._samples: deque[list[Any]] = deque(maxlen=maxlen)

    def record(self, lsn: int, now: float) -> None:
        if self._samples and lsn <= self._samples[-1][2]:
            self._samples[-1][1] = now  # still there: the primary had no more WAL at `now`
        else:
            self._samples.append([now, now, lsn])

    @property
    def latest(self) -> int | None:
        return int(self._samples[-1][2]) if self._samples else None

    def bounds(self, replay_lsn: int, now: float) -> tuple[float, float | None]:
        """(at least, at most) seconds this replica is behind: since the primary first had WAL
        it has not replayed, and since the primary was last seen with nothing more than it has
        (None: not known, the history starts past it)."""
        replayed_at: float | None = None
        for first, last, lsn in self._samples:
            if lsn > replay_lsn:
                return max(0.0, now - first), None if replayed_at is None else now - replayed_at
            replayed_at = last
        return 0.0, None if replayed_at is None else max(0.0, now - replayed_at)

    def lag(self, replay_lsn: int, now: float) -> float:
        """Seconds since the primary first had WAL this replica has not replayed; 0 if none."""
        return self.bounds(replay_lsn, now)[0]


class Router:
    """Replica states and the order in which one read tries the servers."""

    def __init__(
        self,
        replicas: Sequence[str],
        *,
        strategy: Literal["round_robin", "least_lag"],
        max_lag: float,
        eject_backoff: float,
        eject_backoff_max: float,
    ) -> None:
        self.replicas = {name: ReplicaState(name) for name in replicas}
        self.strategy = strategy
        self.max_lag = max_lag
        self.eject_backoff = eject_backoff
        self.eject_backoff_max = eject_backoff_max
        self.history = WalHistory()
        self.block_size = 8192  # wal_block_size and wal_segment_size, read from the primary
        self.segment_size = 16 << 20
        self._turn = itertools.count()
        self._lock = threading.Lock()  # readers that fail together eject a replica once
        self._orders: list[list[tuple[str, bool]]] = []
        self._reorder()

    def candidates(self, after_lsn: int = 0) -> list[tuple[str, bool]]:
        """The servers to try for one read, in order, each with whether a fresh replay check is
        needed first (read-your-writes); the primary last, never needing a check."""
        orders = self._orders
        order = orders[next(self._turn) % len(orders)]
        if not after_lsn:
            return order
        states = self.replicas
        return [
            (name, name != PRIMARY and (states[name].replay_lsn or 0) < after_lsn)
            for name, _ in order
        ]

    def _reorder(self) -> None:
        """Recompute the candidate orders after a state change (not on every read): one order
        per rotation of the usable replicas, least lag first under least_lag."""
        usable = [
            r for r in self.replicas.values()
            if r.admitted and r.lag is not None and r.lag <= self.max_lag
        ]  # fmt: skip
        orders = []
        for start in range(max(len(usable), 1)):
            rotated = usable[start:] + usable[:start]
            if self.strategy == "least_lag":
                rotated.sort(key=lambda r: r.lag or 0.0)  # stable: ties keep the rotation
            orders.append([*((r.name, False) for r in rotated), (PRIMARY, False)])
        self._orders = orders

    def observe_primary(
        self, flush_lsn: int, now: float, block_size: int = 0, segment_size: int = 0
    ) -> None:
        if block_size and segment_size:
            self.block_size, self.segment_size = block_size, segment_size
        with self._lock:
            self.history.record(self.record_end(flush_lsn), now)

    def record_end(self, lsn: int) -> int:
        return record_end(lsn, self.block_size, self.segment_size)

    def observe_replica(
        self, name: str, replay_lsn: int | None, now: float, own_lag: float | None = None
    ) -> None:
        """A successful probe: the replica answers and is in recovery; re-admits an ejected one.
        `own_lag`: the replica's own figure (seconds since its last replayed commit while it
        has WAL to replay, else 0), kept within the bounds the primary's history gives."""
        with self._lock:
            self._observe_replica(name, replay_lsn, now, own_lag)
            self._reorder()

    def _observe_replica(
        self, name: str, replay_lsn: int | None, now: float, own_lag: float | None
    ) -> None:
        state = self.replicas[name]
        state.checked_at = now
        if replay_lsn is not None:
            state.replay_lsn = max(replay_lsn, state.replay_lsn or 0)
            low, high = self.history.bounds(state.replay_lsn, now)
            if own_lag is None:
                state.lag = low
            else:
                state.lag = max(low, own_lag if high is None else min(own_lag, high))
        if not state.admitted:
            logger.info("replica %s is healthy again: re-admitted for reads", name)
        state.admitted, state.failures, state.reason = True, 0, ""
        if state.lag is not None and state.lag > self.max_lag:
            state.reason = f"lag {state.lag:.1f}s over max_lag {self.max_lag:.1f}s"

    def replayed(self, name: str, replay_lsn: int) -> None:
        """A fresh read-your-writes check saw this replay position."""
        state = self.replicas[name]
        state.replay_lsn = max(replay_lsn, state.replay_lsn or 0)

    def eject(self, name: str, reason: str, now: float | None = None) -> None:
        """Take a failed replica out of rotation; it is probed again after a doubling backoff."""
        now = time.perf_counter() if now is None else now
        with self._lock:
            self._eject(name, reason, now)
            self._reorder()

    def _eject(self, name: str, reason: str, now: float) -> None:
        state = self.replicas[name]
        if state.admitted or now >= state.ejected_until:
            delay = min(self.eject_backoff * 2**state.failures, self.eject_backoff_max)
            state.failures += 1
            state.ejected_until = now + delay
            if state.admitted:
                logger.warning(
                    "replica %s ejected from read routing for %.1fs: %s", name, delay, reason
                )
        state.admitted, state.reason = False, reason

    def reset(self) -> None:
        """Forget every replica state and the primary's history (a failover: new servers, a new
        timeline); replicas take reads again once the monitor has measured them."""
        with self._lock:
            self.replicas = {name: ReplicaState(name) for name in self.replicas}
            self.history = WalHistory()
            self._reorder()

    def due_for_probe(self, now: float) -> list[str]:
        """Admitted replicas, and ejected ones whose backoff has passed."""
        return [r.name for r in self.replicas.values() if r.admitted or now >= r.ejected_until]
