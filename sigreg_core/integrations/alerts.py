"""Alerts: a webhook message and/or a command when a run turns unhealthy or collapsed.

The verdict of each logged step (healthy / mild / marked / severe / collapsed: the graded
level of :mod:`sigreg_core.assessment.verdict`, built on the overall p-value of
SIGReg — the mean over M slices of the Epps–Pulley statistic
``EP(x) = N sum_k c_k [(mean cos(t_k x) - exp(-t_k^2/2))^2 + (mean sin(t_k x))^2]``,
LeJEPA arXiv 2511.08544 — and the collapse modes, :mod:`sigreg_core.assessment.diagnosis`)
is watched by :class:`AlertSink`, under the one alert rule of :mod:`sigreg_core.runs.alerts`
(the rule the Monitor page draws and toasts): the untrained start is ignored (an optional
``warmup`` step, and the reference is the best level the run has reached so far); a step
alerts when its level is ``margin`` (default 2) or more levels worse than that best, or when
it is a collapse; each alert must be worse than the last one.  It then sends one message:

* a JSON POST to ``webhook_url``: ``{"text": ...}`` for Slack incoming webhooks,
  ``{"content": ..., "username": ...}`` for Discord webhooks (chosen from the URL), and for
  any other URL both fields plus ``"latent_health"``, the structured event (run, step, level,
  previous level, best level so far, verdict, modes, SIGReg, its null multiple, log10 p,
  RankMe, run folder);
* and/or runs ``command`` (an argument list, or a string split with :func:`shlex.split`; no
  shell) with the event as JSON on stdin and in ``LATENT_HEALTH_*`` environment variables.

With ``repeat=True`` the rule re-arms once the run is back at its best level.  Rate-limited:
at least ``min_interval`` seconds between two messages; events that arrive sooner are
merged into the next message (the worse level, at the step it was reached).  The training thread
only compares two integers and puts the event on a bounded queue; a daemon thread does
the sending, with timeouts, and failures (an unreachable endpoint, an HTTP error, a command
that fails or hangs) are logged on the ``sigreg_core.integrations.alerts`` logger and
counted, never raised::

    from sigreg_core.integrations.alerts import AlertSink
    alerts = AlertSink(webhook_url="https://hooks.slack.com/services/...", run_name="vit-s/lam0.05")
    writer = RunWriter("runs/my-run", every=100, sinks=[alerts])
"""
from __future__ import annotations

import json
import logging
import os
import queue
import shlex
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from typing import Optional, Sequence, Union

from sigreg_core.integrations.base import StepRecord, finite_or_none, severity
from sigreg_core.runs.alerts import AlertRule, AlertTracker

__all__ = ["AlertSink", "alert_event", "build_payload", "alert_message", "LOGGER_NAME"]

LOGGER_NAME = "sigreg_core.integrations.alerts"
log = logging.getLogger(LOGGER_NAME)

_STOP = object()
_DISCORD_LIMIT = 2000  # characters of a Discord message


def _flavour(url: str) -> str:
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host == "hooks.slack.com" or host.endswith(".slack.com"):
        return "slack"
    if host in ("discord.com", "discordapp.com") or host.endswith((".discord.com", ".discordapp.com")):
        return "discord"
    return "generic"


def _slack_escape(s: str) -> str:
    # Slack's mrkdwn control characters (https://api.slack.com/reference/surfaces/formatting)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _discord_escape(s: str) -> str:
    for ch in "\\*_~`|>#[]()-":
        s = s.replace(ch, "\\" + ch)
    return s.replace("@", "@\u200b")  # no @everyone / @here pings from a run name


def _fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(float(v), spec)


def alert_message(event: dict, escape=lambda s: s) -> str:
    """One-line human message for an event (``escape`` is applied to the user's text: the run name)."""
    run = escape(str(event.get("run") or event.get("run_dir") or "run"))
    verb = "turned" if event.get("previous") else "was already"  # no earlier logged step to turn from
    msg = (f"latent-health: {run} {verb} {event['level']} at step {event['step']} "
           f"(SIGReg {_fmt(event.get('sigreg'), '.4g')}, {_fmt(event.get('sigreg_over_null'), '.2f')}x the "
           f"null mean, log10 p {_fmt(event.get('log10_p'), '.1f')}, RankMe {_fmt(event.get('rankme'), '.1f')}")
    modes = event.get("modes") or []
    if modes:
        msg += "; modes: " + ", ".join(escape(str(m)) for m in modes)
    msg += ")"
    if event.get("merged", 0):
        msg += f" [{event['merged']} earlier event(s) merged by the rate limit]"
    return msg


def build_payload(event: dict, flavour: str = "generic") -> dict:
    """The webhook JSON for ``event``: Slack (``text``), Discord (``content``) or generic (both + the event)."""
    if flavour == "slack":
        return {"text": alert_message(event, _slack_escape)}
    if flavour == "discord":
        return {"content": alert_message(event, _discord_escape)[:_DISCORD_LIMIT], "username": "latent-health"}
    if flavour != "generic":
        raise ValueError(f"unknown payload flavour {flavour!r}: slack, discord or generic")
    return {"text": alert_message(event, _slack_escape),
            "content": alert_message(event, _discord_escape)[:_DISCORD_LIMIT],
            "username": "latent-health", "latent_health": event}


def alert_event(record: StepRecord, hit: dict, run_name: Optional[str] = None) -> dict:
    """The structured event of an alert (``hit``: an :class:`~sigreg_core.runs.alerts.AlertTracker` event)."""
    s = record.summary
    return {
        "run": run_name or record.run_dir, "run_dir": record.run_dir, "step": int(record.step),
        "level": hit["verdict"], "previous": hit["previous"], "best": hit["best"], "kind": hit["kind"],
        "verdict": record.verdict, "modes": list(s.get("modes") or []),
        # non-finite numbers become null: strict JSON for every receiver
        "sigreg": finite_or_none(s.get("sigreg")), "sigreg_over_null": finite_or_none(s.get("sigreg_over_null")),
        "log10_p": finite_or_none(s.get("log10_p")), "p_value": finite_or_none(s.get("p_value")),
        "rankme": finite_or_none(s.get("rankme")),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "merged": 0,
    }


class AlertSink:
    """Send a message when a run deteriorates or collapses (the rule of :mod:`sigreg_core.runs.alerts`).

    Parameters
    ----------
    webhook_url: http(s) URL to POST the JSON message to.
    command: a command to run per alert (list of arguments, or a string split like a shell would,
        without a shell); the event JSON on stdin, ``LATENT_HEALTH_LEVEL``, ``_STEP``, ``_RUN``,
        ``_MESSAGE`` in its environment.
    run_name: how messages name the run (default: the run folder).
    levels: the verdicts that may alert (names of the assessment's levels above ``healthy``);
        None: any level the rule flags.
    repeat: alert again after the run is back at its best level (default: each alert worse than the last).
    warmup: steps before this training step are ignored (default 0).
    margin: levels above the best-so-far that make an alert (default 2); a collapse always alerts.
    patience: consecutive scored steps the deterioration must hold (default 1).
    rule: an :class:`~sigreg_core.runs.alerts.AlertRule` instead of the four arguments above.
    min_interval: seconds between two messages (rate limit; sooner events are merged).
    timeout: seconds allowed to one webhook request or command.
    payload: ``"auto"`` (from the URL: Slack, Discord, else generic), ``"slack"``, ``"discord"``, ``"generic"``.
    max_queue: events waiting for the sender at most (more are dropped and logged).
    """

    def __init__(self, webhook_url: Optional[str] = None, command: Union[str, Sequence[str], None] = None, *,
                 run_name: Optional[str] = None, levels: Optional[Sequence[str]] = None,
                 repeat: bool = False, min_interval: float = 60.0, timeout: float = 10.0,
                 payload: str = "auto", max_queue: int = 64, warmup: int = 0, margin: float = 2,
                 patience: int = 1, rule: Optional[AlertRule] = None) -> None:
        if webhook_url is None and command is None:
            raise ValueError("AlertSink needs a webhook_url, a command, or both")
        if webhook_url is not None and urllib.parse.urlsplit(str(webhook_url)).scheme not in ("http", "https"):
            raise ValueError(f"webhook_url must be an http(s) URL, got {webhook_url!r}")
        if levels is not None:
            from sigreg_core.assessment.severity import verdict_levels

            known = [v for v in verdict_levels() if (severity(v) or 0) > 0]
            if not levels or any(lv not in known for lv in levels):
                raise ValueError(f"levels must be among {known!r}, got {list(levels)!r}")
        if payload not in ("auto", "slack", "discord", "generic"):
            raise ValueError(f"payload must be auto, slack, discord or generic, got {payload!r}")
        if float(min_interval) < 0 or float(timeout) <= 0 or int(max_queue) < 1:
            raise ValueError("min_interval must be >= 0, timeout > 0 and max_queue >= 1")
        self.webhook_url = None if webhook_url is None else str(webhook_url)
        if isinstance(command, str):
            command = shlex.split(command)
        self.command = None if command is None else [str(c) for c in command]
        if self.command is not None and not self.command:
            raise ValueError("command is empty")
        self.run_name = run_name
        self.levels = None if levels is None else {str(lv) for lv in levels}
        self.repeat = bool(repeat)
        if rule is None:
            rule = AlertRule(warmup=int(warmup), margin=margin, patience=int(patience), repeat=self.repeat,
                             levels=None if self.levels is None else frozenset(self.levels))
        self.rule = rule
        self._tracker = AlertTracker(rule)
        self.min_interval = float(min_interval)
        self.timeout = float(timeout)
        self.flavour = (_flavour(self.webhook_url) if self.webhook_url else "generic") if payload == "auto" else payload
        self._queue: "queue.Queue" = queue.Queue(maxsize=int(max_queue))
        self._thread: Optional[threading.Thread] = None
        self._start_lock = threading.Lock()
        self._last_sent: Optional[float] = None
        self.sent = 0       # messages delivered (every target succeeded)
        self.failed = 0     # messages with at least one failing target
        self.dropped = 0    # events dropped because the queue was full
        self.history: list = []  # (time, event, ok) of every message attempted

    # -- training thread: cheap
    def log_step(self, record: StepRecord) -> None:
        hit = self._tracker.update(int(record.step), record.verdict)
        if hit is None:
            return
        event = alert_event(record, hit, self.run_name)
        self._ensure_thread()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            log.warning("latent-health alert queue full: dropped the %s alert of step %s",
                        event["level"], event["step"])

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="latent-health-alerts", daemon=True)
                self._thread.start()

    # -- sender thread
    def _run(self) -> None:
        pending: Optional[dict] = None
        stopping = False
        while True:
            if pending is None:
                item = self._queue.get()
                if item is _STOP:
                    self._queue.task_done()
                    return
                pending, taken = item, 1
            # rate limit: wait for the window, merging what arrives meanwhile
            while not stopping and self._last_sent is not None:
                wait = self._last_sent + self.min_interval - time.monotonic()
                if wait <= 0:
                    break
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    break
                taken += 1
                if item is _STOP:
                    stopping = True  # send what is pending now, then stop
                    break
                pending = _merge(pending, item)
            try:
                self._send(pending)
            except Exception as exc:  # a bug here must not kill the sender thread or reach training
                self.failed += 1
                log.warning("latent-health alert for step %s failed: %s: %s",
                            pending.get("step"), type(exc).__name__, exc)
            finally:
                for _ in range(taken):
                    self._queue.task_done()
            pending = None
            if stopping:
                return

    def _send(self, event: dict) -> None:
        self._last_sent = time.monotonic()
        ok = True
        if self.webhook_url is not None:
            ok &= self._post(event)
        if self.command is not None:
            ok &= self._run_command(event)
        self.history.append((time.time(), event, ok))
        if ok:
            self.sent += 1
        else:
            self.failed += 1

    def _post(self, event: dict) -> bool:
        body = json.dumps(build_payload(event, self.flavour), allow_nan=False).encode()
        req = urllib.request.Request(self.webhook_url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "latent-health"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - user's own URL
                resp.read(65536)
            return True
        except urllib.error.HTTPError as exc:
            log.warning("latent-health alert webhook answered HTTP %s for step %s", exc.code, event["step"])
        except Exception as exc:  # unreachable, timeout, TLS ...
            log.warning("latent-health alert webhook failed for step %s: %s: %s",
                        event["step"], type(exc).__name__, exc)
        return False

    def _run_command(self, event: dict) -> bool:
        env = dict(os.environ)
        env.update({"LATENT_HEALTH_LEVEL": event["level"], "LATENT_HEALTH_STEP": str(event["step"]),
                    "LATENT_HEALTH_RUN": str(event.get("run") or ""), "LATENT_HEALTH_MESSAGE": alert_message(event)})
        try:
            res = subprocess.run(self.command, input=json.dumps(event).encode(), env=env, timeout=self.timeout,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        except subprocess.TimeoutExpired:
            log.warning("latent-health alert command timed out after %.0f s (step %s)", self.timeout, event["step"])
            return False
        except Exception as exc:  # not found, not executable ...
            log.warning("latent-health alert command failed to start (step %s): %s: %s",
                        event["step"], type(exc).__name__, exc)
            return False
        if res.returncode != 0:
            tail = res.stderr.decode(errors="replace").strip().splitlines()[-1:] if res.stderr else []
            log.warning("latent-health alert command exited %s (step %s)%s", res.returncode, event["step"],
                        f": {tail[0]!r}" if tail else "")
            return False
        return True

    # -- lifecycle
    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until the queue is empty and the sender idle (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0 or self._thread is None or not self._thread.is_alive():
                return True
            time.sleep(0.01)
        return False

    def close(self, timeout: Optional[float] = None) -> None:
        """Send what is pending (ignoring the rate limit) and stop the sender.

        Waits at most ``timeout`` seconds (default ``2 * timeout + 1`` of the sink), so a dead
        endpoint cannot hold up the end of training; the sender is a daemon thread.
        """
        th = self._thread
        if th is None or not th.is_alive():
            return
        limit = (2 * self.timeout + 1) if timeout is None else float(timeout)
        deadline = time.monotonic() + limit
        try:
            self._queue.put(_STOP, timeout=max(limit, 0.001))
        except queue.Full:
            log.warning("latent-health alerts: %d message(s) still queued at close", self._queue.qsize())
            return
        th.join(max(deadline - time.monotonic(), 0.0))
        if th.is_alive():
            log.warning("latent-health alerts: gave up waiting for the sender after %.0f s at close", limit)


def _merge(a: dict, b: dict) -> dict:
    """Two events as one message: the worse level, at the step it was reached; ``merged`` counts the rest."""
    worse = b if (severity(b["level"]) or 0) >= (severity(a["level"]) or 0) else a
    out = dict(worse)
    out["previous"] = a["previous"]
    out["merged"] = a.get("merged", 0) + b.get("merged", 0) + 1
    return out
