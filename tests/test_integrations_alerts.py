"""Alerts against a local HTTP server on 127.0.0.1: transitions, once each, rate limit, failures never raise."""
from __future__ import annotations

import json
import logging
import sys
import time

import pytest
import torch

from integration_helpers import WebhookServer
from sigreg_core.integrations.alerts import LOGGER_NAME, AlertSink, _flavour, build_payload
from sigreg_core.integrations.base import StepRecord
from sigreg_core.runs import RunWriter


@pytest.fixture()
def server():
    s = WebhookServer()
    yield s
    s.close()


def _rec(step, verdict, **kw):
    summ = {"verdict": verdict, "sigreg": 1.0 + step, "sigreg_over_null": 1.5, "log10_p": -4.0, "rankme": 3.0,
            "modes": ["dimensional_collapse"] if verdict != "healthy" else []}
    summ.update(kw)
    return StepRecord(step, summ, None, {}, "runs/x")


def _feed(sink, verdicts):
    for step, v in enumerate(verdicts):
        sink.log_step(_rec(step, v))


def test_once_per_transition(server):
    sink = AlertSink(server.url, run_name="vit-s", min_interval=0)
    _feed(sink, ["healthy", "marked", "marked", "collapsed", "collapsed", "healthy", "marked", "collapsed"])
    assert sink.flush(10)
    msgs = server.json()
    assert [m["latent_health"]["level"] for m in msgs] == ["marked", "collapsed"]
    assert [m["latent_health"]["step"] for m in msgs] == [1, 3]
    assert [m["latent_health"]["previous"] for m in msgs] == ["healthy", "marked"]
    assert msgs[0]["text"].startswith("latent-health: vit-s turned marked at step 1")
    assert msgs[0]["content"].startswith("latent-health: vit\\-s turned marked at step 1")
    assert "dimensional_collapse" in msgs[1]["text"] and msgs[1]["username"] == "latent-health"
    assert server.requests[0]["headers"]["Content-Type"] == "application/json"
    assert (sink.sent, sink.failed) == (2, 0)
    sink.close()


def test_repeat_rearms_after_healthy_and_only_watched_levels_alert(server):
    sink = AlertSink(server.url, min_interval=0, repeat=True)
    _feed(sink, ["marked", "healthy", "marked", "collapsed", "marked", "collapsed", "healthy", "marked"])
    sink.flush(10)
    # step 0: the untrained start (the best so far) is no alert; collapsed again at 5: not re-armed (no recovery
    # to the best level in between); healthy at 6 re-arms, so marked at 7 alerts again
    assert [(m["latent_health"]["step"], m["latent_health"]["level"]) for m in server.json()] == [
        (2, "marked"), (3, "collapsed"), (7, "marked")]
    only = AlertSink(server.url, min_interval=0, levels=["collapsed"])
    _feed(only, ["marked", "collapsed"])
    only.flush(10)
    assert server.json()[-1]["latent_health"]["step"] == 1 and len(server.json()) == 4
    for s in (sink, only):
        s.close()


def test_rate_limit_merges_and_delays(server):
    sink = AlertSink(server.url, min_interval=0.6, repeat=True)
    _feed(sink, ["collapsed", "healthy", "marked", "collapsed"])  # 3 events within the window
    assert sink.flush(10)
    msgs = server.json()
    assert len(msgs) == 2
    assert msgs[0]["latent_health"]["level"] == "collapsed" and msgs[0]["latent_health"]["merged"] == 0
    assert msgs[1]["latent_health"]["level"] == "collapsed" and msgs[1]["latent_health"]["step"] == 3
    assert msgs[1]["latent_health"]["merged"] == 1 and "merged by the rate limit" in msgs[1]["text"]
    assert msgs[0]["latent_health"]["previous"] is None  # the first logged step: nothing to turn from
    assert msgs[0]["text"].startswith("latent-health: runs/x was already collapsed at step 0")
    gap = server.requests[1]["time"] - server.requests[0]["time"]
    assert gap >= 0.55
    sink.close()


def test_close_sends_pending_without_waiting_for_the_window(server):
    sink = AlertSink(server.url, min_interval=3600, repeat=True)
    _feed(sink, ["healthy", "marked", "collapsed"])
    t0 = time.monotonic()
    sink.close()
    assert time.monotonic() - t0 < 10
    assert [m["latent_health"]["level"] for m in server.json()] == ["marked", "collapsed"]


def test_failing_endpoints_and_commands_are_logged_never_raised(server, caplog, tmp_path):
    caplog.set_level(logging.WARNING, logger=LOGGER_NAME)
    server.status = 500
    s500 = AlertSink(server.url, min_interval=0)
    dead = WebhookServer()
    dead_url = dead.url
    dead.close()  # nothing listens there any more
    unreachable = AlertSink(dead_url, min_interval=0, timeout=2)
    failing_cmd = AlertSink(command=[sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"],
                            min_interval=0)
    missing_cmd = AlertSink(command=str(tmp_path / "no-such-program"), min_interval=0)
    hanging_cmd = AlertSink(command=[sys.executable, "-c", "import time; time.sleep(30)"], min_interval=0, timeout=0.5)
    sinks = [s500, unreachable, failing_cmd, missing_cmd, hanging_cmd]
    for s in sinks:
        _feed(s, ["healthy", "collapsed"])
    for s in sinks:
        assert s.flush(20)
        assert (s.sent, s.failed) == (0, 1)
        s.close()
    text = caplog.text
    assert "HTTP 500" in text and "webhook failed" in text and "exited 3" in text and "'boom'" in text
    assert "failed to start" in text and "timed out" in text


def test_a_slow_endpoint_does_not_slow_training(tmp_path):
    slow = WebhookServer(delay=1.0)
    try:
        sink = AlertSink(slow.url, min_interval=0, repeat=True, max_queue=4, timeout=5)
        t0 = time.perf_counter()
        _feed(sink, ["collapsed", "healthy"] * 20)  # 20 alerts while the server sleeps on the first
        elapsed = time.perf_counter() - t0
        assert elapsed < 0.5, elapsed  # the training thread never waits for the network
        assert sink.dropped >= 20 - 4 - 1  # the bounded queue overflowed: dropped and logged, not blocked
        sink.close(timeout=30)
        assert sink.sent + sink.dropped == 20 and sink.failed == 0
    finally:
        slow.close()


def test_command_gets_the_event_on_stdin_and_in_its_environment(tmp_path):
    out = tmp_path / "got.json"
    script = ("import json, os, sys; ev = json.load(sys.stdin); "
              f"json.dump({{'ev': ev, 'env': {{k: v for k, v in os.environ.items() if k.startswith('LATENT_HEALTH_')}}}}, "
              f"open({str(out)!r}, 'w'))")
    sink = AlertSink(command=[sys.executable, "-c", script], run_name="r1", min_interval=0)
    _feed(sink, ["healthy", "marked"])
    assert sink.flush(20) and sink.sent == 1
    got = json.loads(out.read_text())
    assert got["ev"]["level"] == "marked" and got["ev"]["step"] == 1 and got["ev"]["run"] == "r1"
    assert got["env"]["LATENT_HEALTH_LEVEL"] == "marked" and got["env"]["LATENT_HEALTH_STEP"] == "1"
    assert got["env"]["LATENT_HEALTH_RUN"] == "r1" and "turned marked" in got["env"]["LATENT_HEALTH_MESSAGE"]
    sink.close()


def test_payload_flavours_and_escaping(server):
    assert _flavour("https://hooks.slack.com/services/T/B/X") == "slack"
    assert _flavour("https://discord.com/api/webhooks/1/abc") == "discord"
    assert _flavour("https://example.org/hook") == "generic"
    ev = {"run": "<!channel> @everyone *bold*", "step": 7, "level": "collapsed", "modes": ["full_collapse"],
          "sigreg": 400.0, "sigreg_over_null": 380.0, "log10_p": None, "rankme": 1.0}
    slack = build_payload(ev, "slack")
    assert set(slack) == {"text"} and "&lt;!channel&gt;" in slack["text"] and "<!" not in slack["text"]
    discord = build_payload(ev, "discord")
    assert set(discord) == {"content", "username"}
    assert "@\u200beveryone" in discord["content"] and "\\*bold\\*" in discord["content"]
    assert "log10 p n/a" in slack["text"]
    sink = AlertSink(server.url, payload="discord", min_interval=0)
    _feed(sink, ["collapsed"])
    sink.flush(10)
    assert set(server.json()[0]) == {"content", "username"}
    sink.close()
    with pytest.raises(ValueError):
        AlertSink()
    with pytest.raises(ValueError):
        AlertSink("file:///etc/passwd")
    with pytest.raises(ValueError):
        AlertSink(server.url, levels=["healthy"])


def test_end_to_end_with_the_run_writer_on_a_collapsing_run(server, tmp_path):
    g = torch.Generator().manual_seed(0)
    sink = AlertSink(server.url, run_name="demo", min_interval=0)
    with RunWriter(tmp_path / "run", every=1, num_slices=32, sinks=[sink]) as w:
        w.log(0, torch.randn(256, 8, generator=g))                                            # healthy
        w.log(1, torch.randn(1, 8, generator=g) + 1e-3 * torch.randn(256, 8, generator=g))  # collapsed
        w.log(2, torch.randn(1, 8, generator=g) + 1e-3 * torch.randn(256, 8, generator=g))  # still collapsed
    msgs = server.json()  # the writer's close() flushed the sink
    assert len(msgs) == 1
    ev = msgs[0]["latent_health"]
    assert (ev["step"], ev["level"], ev["previous"]) == (1, "collapsed", "healthy")
    assert ev["run_dir"] == str(tmp_path / "run") and ev["sigreg_over_null"] > 10


def test_non_finite_numbers_are_sent_as_null(server):
    sink = AlertSink(server.url, min_interval=0)
    sink.log_step(_rec(0, "collapsed", sigreg=float("inf"), log10_p=float("-inf"), p_value=0.0, rankme=float("nan")))
    sink.close()
    body = server.requests[0]["body"].decode()
    assert "Infinity" not in body and "NaN" not in body
    ev = json.loads(body)["latent_health"]
    assert ev["sigreg"] is None and ev["log10_p"] is None and ev["rankme"] is None and ev["p_value"] == 0.0
    assert "SIGReg n/a" in json.loads(body)["text"]


def test_levels_follow_the_shared_verdict_ranking(server):
    from sigreg_core.assessment.severity import severity

    # a level name the assessment does not know (an older or newer run) is ranked by the shared
    # mapping: above healthy, below collapsed; with the default levels it alerts, then collapse does
    assert 1 <= severity("degraded") < severity("collapsed")
    sink = AlertSink(server.url, min_interval=0)
    _feed(sink, ["healthy", "degraded", "collapsed", "not scored"])  # no verdict: ignored
    sink.flush(10)
    assert [(m["latent_health"]["level"], m["latent_health"]["previous"]) for m in server.json()] == [
        ("degraded", "healthy"), ("collapsed", "degraded")]
    sink.close()
    with pytest.raises(ValueError, match="levels must be among"):
        AlertSink(server.url, levels=["degraded"])  # explicit levels must be the assessment's own


def test_every_graded_level_alerts_once_on_the_way_up_unless_filtered(server):
    from sigreg_core.assessment.severity import verdict_levels

    ladder = list(verdict_levels())  # healthy, then each graded level, collapsed last
    assert ladder[0] == "healthy" and ladder[-1] == "collapsed"
    sink = AlertSink(server.url, min_interval=0)
    _feed(sink, ladder + ladder[::-1] + ladder)  # up, down, up again: each level once
    sink.flush(10)
    # the default margin is 2 levels above the best (healthy): the first graded level is a flicker, no alert
    assert [m["latent_health"]["level"] for m in server.json()] == ladder[2:]
    sink.close()
    few = AlertSink(server.url, min_interval=0, levels=ladder[-2:])
    _feed(few, ladder)
    few.flush(10)
    assert [m["latent_health"]["level"] for m in server.json()[len(ladder) - 2:]] == ladder[-2:]
    every = AlertSink(server.url, min_interval=0, margin=1)  # margin 1: every level up alerts
    _feed(every, ladder)
    every.flush(10)
    assert [m["latent_health"]["level"] for m in server.json()[len(ladder):]] == ladder[1:]
    every.close()
    few.close()
