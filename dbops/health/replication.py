"""Judging a replica: how far behind it is, in bytes and in time, and whether its stream works.

Lag in bytes is the primary's WAL position minus the replica's replay position: exact, and zero on
an idle primary whose replica has everything. Lag in time is zero when the replica has replayed
everything; otherwise it is the larger of PostgreSQL's own measurement on the primary
(pg_stat_replication.replay_lag, which keeps growing while replay is stuck) and how long ago this
checker first saw the primary write past the replica's replay position. Only when neither is
known is the age of the last replayed transaction used, as an upper bound: that age alone would
call an idle primary's replica hours behind. A stream that is not streaming, or silent longer than
wal_receiver_timeout, is broken even when the bytes say zero.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import timedelta

from dbops.health.probe import ReplicaSnapshot, Stream
from dbops.health.result import CheckResult
from dbops.levels import Status, status_of
from dbops.units import format_duration


class LsnTimeline:
    """The primary's WAL position as this checker saw it over time (monotonic seconds)."""

    def __init__(self, *, keep: float = 3600.0, size: int = 4096) -> None:
        self._samples: deque[tuple[float, int]] = deque(maxlen=size)
        self._keep = keep

    def add(self, at: float, lsn: int) -> None:
        if self._samples and lsn < self._samples[-1][1]:
            self._samples.clear()  # another server (a failover): its positions are not comparable
        self._samples.append((at, lsn))
        while self._samples and self._samples[0][0] < at - self._keep:
            self._samples.popleft()

    def clear(self) -> None:
        self._samples.clear()

    def behind_since(self, replay_lsn: int, now: float) -> float | None:
        """Seconds since the primary was first seen past `replay_lsn`: a lower bound of the lag."""
        for at, lsn in self._samples:
            if lsn > replay_lsn:
                return max(now - at, 0.0)
        return None


@dataclass(frozen=True)
class PrimaryView:
    """What the primary said about replication in this cycle (lsn None: not known)."""

    lsn: int | None
    streams: tuple[Stream, ...]
    replicas: int


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def match_stream(name: str, host: str, application: str, view: PrimaryView) -> Stream | None:
    """The primary's stream for this replica: by application_name (the replica's name, its
    cluster_name or the application_name of its primary_conninfo), by address when the plan
    names an IP, or the only stream when the plan has only one replica."""
    for wanted in (name, application):
        found = [s for s in view.streams if wanted and s.application == wanted]
        if len(found) == 1:
            return found[0]
    found = [s for s in view.streams if s.address == host]
    if len(found) == 1:
        return found[0]
    if len(view.streams) == 1 and view.replicas == 1:
        return view.streams[0]
    return None


def _time_lag(behind: int, stream: Stream | None, lower_bound: float | None,
              snap: ReplicaSnapshot) -> tuple[float | None, str]:
    """(seconds, how it was measured)."""
    if behind == 0:
        return 0.0, "caught_up"
    measured = [x for x in (stream.replay_lag if stream else None, lower_bound) if x is not None]
    if measured:
        return max(measured), "measured"
    if snap.replay_age is not None:
        return snap.replay_age, "upper_bound"
    return None, "unknown"


def _broken(snap: ReplicaSnapshot) -> str | None:
    """Why the WAL stream is not working, or None when it is."""
    if snap.receiver_status is None:
        return "no WAL receiver is running (it cannot reach the primary)"
    if snap.receiver_status != "streaming":
        return f"its WAL receiver is {snap.receiver_status}, not streaming"
    silent, limit = snap.receiver_silent, snap.receiver_timeout
    if silent is not None and limit > 0 and silent > limit:
        return (f"no message from the primary for {format_duration(silent)} "
                f"(wal_receiver_timeout {format_duration(limit)})")
    return None


def evaluate_replica(name: str, host: str, snap: ReplicaSnapshot | None, error: str | None,
                     view: PrimaryView, threshold: float, timeline: LsnTimeline,
                     now: float) -> CheckResult:
    """The replication_lag.<name> check."""
    check = f"replication_lag.{name}"
    limit = f"threshold {format_duration(timedelta(seconds=threshold))}"
    if snap is None:
        return CheckResult(check, None, threshold, "critical",
                           f"{name} cannot be reached: {error or 'unknown error'}",
                           {"streaming": False})
    if not snap.in_recovery:
        return CheckResult(check, None, threshold, "critical",
                           f"{name} is not replaying: it is not in recovery (promoted, or not a "
                           "replica)", {"streaming": False})
    if snap.replay_lsn is None:
        return CheckResult(check, None, threshold, "critical", f"{name} has replayed nothing yet",
                           {"streaming": False})
    broken = _broken(snap)
    details: dict[str, float | int | str | bool | None] = {
        "streaming": broken is None, "paused": snap.paused}
    if view.lsn is None:
        lag: float | None = None
        text = (f"{name} replayed up to {lsn_text(snap.replay_lsn)}; the primary's position is "
                "unknown")
    else:
        behind = max(view.lsn - snap.replay_lsn, 0)
        stream = match_stream(name, host, snap.application, view)
        lag, how = _time_lag(behind, stream, timeline.behind_since(snap.replay_lsn, now), snap)
        details.update(bytes=behind, estimate=how)
        if lag is None:
            text = f"{name} is {behind} bytes behind (how long is unknown; {limit})"
        else:
            bound = "at most " if how == "upper_bound" else ""
            text = f"{name} is {behind} bytes and {bound}{format_duration(lag)} behind ({limit})"
    status: Status = "warning" if lag is None else status_of(lag, threshold)
    if snap.paused:
        text += "; replay is paused"
        status = "warning" if status == "ok" else status
    if broken is not None:
        return CheckResult(check, lag, threshold, "critical",
                           f"{name}'s WAL stream is broken: {broken}; {text}", details)
    return CheckResult(check, lag, threshold, status, text, details)
