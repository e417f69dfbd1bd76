"""Alerts: log, webhook (a JSON POST) and command channels.

An alert is raised when a check's status changes, repeated while it stays the same at most once
per the channel's cooldown, and followed by a resolved notice when the check is ok again.
Webhooks and commands are delivered on a thread per channel, with a timeout per attempt and the
channel's retries, so a slow or failing endpoint never holds up monitoring; every failed attempt
and every alert given up is logged on `dbops.health.alerts`.

A webhook URL is a Secret (it often carries a token): dbops.connect reveals it to send, and it is
only ever shown as `scheme://host:port/***`. A webhook follows a redirect only to the same scheme,
host and port, and reads at most 64 KiB of the answer.

A command runs with an explicit environment: PATH, HOME and LANG, the variables the channel
declares (`env`), and the alert's DBOPS_ALERT_* variables; never a secret (config/secrets.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from dbops import __version__
from dbops.config.model import AlertChannel, Plan
from dbops.config.secrets import ALWAYS_SECRET, is_secret_variable
from dbops.connect import mask, reveal
from dbops.health.result import HealthReport
from dbops.levels import Status

LOG = logging.getLogger("dbops.health.alerts")

State = Literal["firing", "resolved"]
_LEVELS = {"ok": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}
_MAX_BACKOFF = 5.0
_QUEUE_SIZE = 1000
_BASE_ENVIRONMENT = ("PATH", "HOME", "LANG")


@dataclass(frozen=True)
class AlertEvent:
    environment: str
    check: str
    state: State
    status: Status
    previous: Status
    value: float | None
    threshold: float | None
    message: str
    at: datetime
    repeat: bool = False

    def summary(self) -> str:
        label = "resolved" if self.state == "resolved" else self.status
        again = " (still)" if self.repeat else ""
        return f"[{self.environment}] {label}{again}: {self.check}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"environment": self.environment, "check": self.check, "state": self.state,
                "status": self.status, "previous_status": self.previous, "value": self.value,
                "threshold": self.threshold, "message": self.message,
                "at": self.at.isoformat(), "repeat": self.repeat, "source": "dbops"}


class DeliveryFailed(Exception):
    """One delivery attempt failed; the message is safe to log."""


class Channel:
    """Where alerts go. Subclasses deliver one event or raise DeliveryFailed."""

    kind = "channel"
    threaded = True

    def __init__(self, *, timeout: float, retries: int, cooldown: float) -> None:
        self.timeout, self.retries, self.cooldown = timeout, retries, cooldown

    def describe(self) -> str:
        return self.kind

    def deliver(self, event: AlertEvent) -> None:
        raise NotImplementedError


class LogChannel(Channel):
    kind = "log"
    threaded = False  # nothing to wait for

    def deliver(self, event: AlertEvent) -> None:
        level = _LEVELS["ok" if event.state == "resolved" else event.status]
        LOG.log(level, event.summary())


def masked_url(url: str) -> str:
    """`https://hooks.example.com:8443/***`: where it goes, without the path that holds the token."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or '?'}{port}/***"
    except ValueError:
        return "***"


class _SameOrigin(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to the scheme, host and port it came from."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        if _origin(newurl) != _origin(req.full_url):
            raise DeliveryFailed(f"HTTP {code}: redirected to {masked_url(newurl)}, "
                                 "another host: not followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


_OPENER = urllib.request.build_opener(_SameOrigin)
_MAX_ANSWER = 64 * 1024


class WebhookChannel(Channel):
    kind = "webhook"

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._url = url

    def __repr__(self) -> str:
        return f"WebhookChannel({masked_url(self._url)})"

    def describe(self) -> str:
        return f"webhook {masked_url(self._url)}"

    def _scrub(self, text: str) -> str:
        return mask(text.replace(self._url, masked_url(self._url)))

    def deliver(self, event: AlertEvent) -> None:
        body = json.dumps(event.to_dict()).encode()
        request = urllib.request.Request(
            self._url, data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": f"dbops/{__version__}"})
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                response.read(_MAX_ANSWER)
        except urllib.error.HTTPError as exc:
            raise DeliveryFailed(f"HTTP {exc.code} {self._scrub(str(exc.reason))}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise DeliveryFailed(f"no answer within {self.timeout:g}s") from None
            raise DeliveryFailed(self._scrub(str(reason))) from None
        except TimeoutError:
            raise DeliveryFailed(f"no answer within {self.timeout:g}s") from None
        except OSError as exc:
            raise DeliveryFailed(self._scrub(str(exc))) from None


class CommandChannel(Channel):
    """Runs the command with /bin/sh, the alert as JSON on standard input and in DBOPS_ALERT_*,
    in an environment of PATH, HOME, LANG and the variables `env` names, never a secret."""

    kind = "command"

    def __init__(self, command: str, *, env: Sequence[str] = (),
                 secrets: frozenset[str] = ALWAYS_SECRET, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.command = command
        self.passed = tuple(name for name in (*_BASE_ENVIRONMENT, *env)
                            if not is_secret_variable(name, secrets))

    def environment(self, event: AlertEvent) -> dict[str, str]:
        """What the child gets: the passed variables that are set, and the alert's."""
        return {**{name: os.environ[name] for name in self.passed if name in os.environ},
                "DBOPS_ALERT_CHECK": event.check, "DBOPS_ALERT_STATE": event.state,
                "DBOPS_ALERT_STATUS": event.status, "DBOPS_ALERT_MESSAGE": event.message,
                "DBOPS_ALERT_ENVIRONMENT": event.environment}

    def describe(self) -> str:
        return f"command {self.command.split()[0] if self.command.split() else '?'}"

    def deliver(self, event: AlertEvent) -> None:
        env = self.environment(event)
        try:
            done = subprocess.run(["/bin/sh", "-c", self.command],
                                  input=json.dumps(event.to_dict()), capture_output=True,
                                  text=True, timeout=self.timeout, env=env, check=False)
        except subprocess.TimeoutExpired:
            raise DeliveryFailed(f"did not finish within {self.timeout:g}s") from None
        except OSError as exc:
            raise DeliveryFailed(mask(str(exc))) from None
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise DeliveryFailed(f"exit {done.returncode}"
                                 + (f": {mask(lines[-1])}" if lines else ""))


def channel(config: AlertChannel, secrets: frozenset[str] = ALWAYS_SECRET) -> Channel:
    """The channel of `config`; `secrets` names the variables a command never receives."""
    timeout, retries = config.timeout.total_seconds(), config.retries
    cooldown = config.cooldown.total_seconds()
    if config.type == "webhook" and config.url is not None:
        # dbops.connect reveals it (and masks it from then on): a webhook needs its URL to post.
        return WebhookChannel(reveal(config.url), timeout=timeout, retries=retries,
                              cooldown=cooldown)
    if config.type == "command" and config.command:
        return CommandChannel(config.command, env=config.env, secrets=secrets, timeout=timeout,
                              retries=retries, cooldown=cooldown)
    return LogChannel(timeout=timeout, retries=retries, cooldown=cooldown)


class _Courier:
    """A channel's delivery thread: attempts, backoff between them, and the log of failures."""

    def __init__(self, target: Channel, backoff: float, stats: dict[str, int]) -> None:
        self.channel = target
        self.backoff = backoff
        self.stats = stats
        self.queue: queue.Queue[AlertEvent | None] = queue.Queue(maxsize=_QUEUE_SIZE)
        self.thread = threading.Thread(target=self._run, name=f"dbops-alerts-{target.kind}",
                                       daemon=True)
        self.thread.start()

    def post(self, event: AlertEvent) -> None:
        if not self.thread.is_alive():  # closed earlier: a monitor used again after stopping
            self.thread = threading.Thread(target=self._run, name=self.thread.name, daemon=True)
            self.thread.start()
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.stats["dropped"] += 1
            LOG.error("dropped alert %s for %s: %d alerts already wait for delivery",
                      event.summary(), self.channel.describe(), _QUEUE_SIZE)

    def _run(self) -> None:
        while (event := self.queue.get()) is not None:
            try:
                deliver(self.channel, event, self.backoff, self.stats)
            except Exception:  # a bug in a channel must not end alerting silently
                LOG.exception("alert delivery to %s crashed; later alerts still go out",
                              self.channel.describe())


def deliver(target: Channel, event: AlertEvent, backoff: float, stats: dict[str, int]) -> bool:
    """Deliver with the channel's retries; True when it arrived."""
    attempts = 1 + target.retries
    for attempt in range(1, attempts + 1):
        try:
            target.deliver(event)
        except DeliveryFailed as exc:
            stats["failed_attempts"] += 1
            LOG.warning("alert %s/%s to %s failed (attempt %d of %d): %s", event.check,
                        event.state, target.describe(), attempt, attempts, exc)
            if attempt < attempts:
                time.sleep(min(backoff * 2 ** (attempt - 1), _MAX_BACKOFF))
            continue
        stats["delivered"] += 1
        return True
    stats["given_up"] += 1
    LOG.error("gave up on alert %s/%s to %s after %d attempt(s): %s", event.check, event.state,
              target.describe(), attempts, event.summary())
    return False


class AlertDispatcher:
    """Decides which alerts a report raises and hands them to the channels."""

    def __init__(self, environment: str, channels: Sequence[Channel], *,
                 backoff: float = 0.5, keep: int = 200,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`clock` measures cooldowns (seconds; tests pass their own)."""
        self.environment = environment
        self._clock = clock
        self.channels = list(channels)
        self.stats = {"delivered": 0, "failed_attempts": 0, "given_up": 0, "dropped": 0}
        self.recent: deque[AlertEvent] = deque(maxlen=keep)
        self._couriers = {n: _Courier(c, backoff, self.stats)
                          for n, c in enumerate(self.channels) if c.threaded}
        self._sent: dict[tuple[int, str], tuple[Status, float]] = {}
        self._statuses: dict[str, Status] = {}
        self._backoff = backoff

    @classmethod
    def from_plan(cls, plan: Plan, **kwargs: Any) -> AlertDispatcher:
        secrets = plan.secret_variables
        return cls(plan.environment, [channel(c, secrets) for c in plan.health.alerts], **kwargs)

    def observe(self, report: HealthReport) -> list[AlertEvent]:
        """The alerts `report` raises, handed to the channels that are due; returned too."""
        now = self._clock()
        raised: list[AlertEvent] = []
        for result in report.results:
            previous = self._statuses.get(result.name, "ok")
            self._statuses[result.name] = result.status
            event = AlertEvent(self.environment, result.name,
                               "resolved" if result.status == "ok" else "firing", result.status,
                               previous, result.value, result.threshold, result.message,
                               report.checked_at, repeat=result.status == previous)
            sent_any = False
            for n, target in enumerate(self.channels):
                last = self._sent.get((n, result.name))
                if result.status == "ok":
                    due = last is not None and last[0] != "ok"
                else:
                    due = last is None or last[0] != result.status or now - last[1] >= target.cooldown
                if due:
                    self._sent[(n, result.name)] = (result.status, now)
                    self._send(n, target, event)
                    sent_any = True
            if sent_any:
                raised.append(event)
                self.recent.append(event)
        return raised

    def _send(self, n: int, target: Channel, event: AlertEvent) -> None:
        courier = self._couriers.get(n)
        if courier is not None:
            courier.post(event)
        else:
            deliver(target, event, self._backoff, self.stats)

    def close(self, timeout: float = 5.0) -> None:
        """Let queued alerts go out for up to `timeout` seconds, then stop the threads."""
        deadline = time.monotonic() + timeout
        for courier in self._couriers.values():
            with contextlib.suppress(queue.Full):  # a daemon thread: it ends with the process
                courier.queue.put_nowait(None)
        for courier in self._couriers.values():
            courier.thread.join(max(deadline - time.monotonic(), 0))
