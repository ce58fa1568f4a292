"""Benchmark: what each integration adds per logged step, on top of the summary itself.

For one training-like batch (default N = 4096 rows, D = 256, M = 256 slices: the
RunWriter defaults) it times

* the summary alone (``summarize``, what every logged step costs anyway), and the whole
  ``RunWriter.log`` without sinks (summary + snapshot + index commit);
* each sink's ``log_step`` on that step's record (the extra cost of the integration,
  paid in the training thread): TensorBoard (own SummaryWriter, flushed per step, with
  and without the histogram), W&B (offline run), the Trainer-logger sink of the Lightning
  callback (a CSVLogger and a TensorBoardLogger), alerts (a transition: enqueue only; the
  POST happens on the sender thread) and alerts without a transition;
* the summary with ``per_slice=True`` (what a writer with sinks computes).

Each cost is the median of ``--reps`` calls after one warm-up call.  The numbers depend
on the machine's load; ratios within one run are more robust than absolute times.

    python benchmarks/bench_integrations.py                 # N=4096, D=256, M=256
    python benchmarks/bench_integrations.py --n 1024 --d 64 --reps 20
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import threading

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sigreg_core.runs import RunWriter, SummaryConfig, summarize  # noqa: E402
from sigreg_core.integrations.base import StepRecord  # noqa: E402


def timed(fn, reps: int) -> float:
    fn(0)  # warm-up
    out = []
    for i in range(1, reps + 1):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


class _Quiet(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--m", type=int, default=256)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-integrations-"))
    os.environ.update(WANDB_MODE="offline", WANDB_DIR=str(tmp), WANDB_SILENT="true", WANDB_CONSOLE="off")
    warnings.simplefilter("ignore")
    g = torch.Generator().manual_seed(0)
    z = torch.randn(args.n, args.d, generator=g)
    cfg = SummaryConfig(num_slices=args.m)
    rows = []

    t_sum = timed(lambda i: summarize(z, cfg), args.reps)
    rows.append(("summary (summarize)", t_sum))
    rows.append(("summary with per-slice array", timed(lambda i: summarize(z, cfg, per_slice=True), args.reps)))
    with RunWriter(tmp / "plain", max_rows=args.n, num_slices=args.m, keep_last=3) as w:
        rows.append(("RunWriter.log, no sinks (summary + snapshot + index)", timed(lambda i: w.log(i, z), args.reps)))

    summ = summarize(z, cfg, per_slice=True)
    per_slice = summ.pop("per_slice_statistic")

    def rec(i, verdict=None):
        s = dict(summ)
        if verdict is not None:
            s["verdict"] = verdict
        return StepRecord(i, s, per_slice, {"loss": 1.0}, str(tmp / "plain"))

    from sigreg_core.integrations.tensorboard import TensorBoardSink

    tb = TensorBoardSink(log_dir=tmp / "tb")
    rows.append(("TensorBoardSink (6 scalars + histogram, flush)", timed(lambda i: tb.log_step(rec(i)), args.reps)))
    tb2 = TensorBoardSink(log_dir=tmp / "tb2", histogram=False)
    rows.append(("TensorBoardSink (6 scalars, no histogram, flush)", timed(lambda i: tb2.log_step(rec(i)), args.reps)))
    tb3 = TensorBoardSink(log_dir=tmp / "tb3", flush=False)
    rows.append(("TensorBoardSink (scalars + histogram, no flush)", timed(lambda i: tb3.log_step(rec(i)), args.reps)))
    for s in (tb, tb2, tb3):
        s.close()

    import wandb
    from sigreg_core.integrations.wandb import WandbSink

    run = wandb.init(project="bench", mode="offline", dir=str(tmp))
    wb = WandbSink(run)
    rows.append(("WandbSink (offline run, scalars + histogram)", timed(lambda i: wb.log_step(rec(i)), args.reps)))
    run.finish()

    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from sigreg_core.integrations.lightning import TrainerLoggerSink

    class _T:
        loggers = [CSVLogger(tmp, name="csv"), TensorBoardLogger(tmp, name="tbl")]

    tl = TrainerLoggerSink(_T())
    rows.append(("TrainerLoggerSink (CSVLogger + TensorBoardLogger)", timed(lambda i: tl.log_step(rec(i)), args.reps)))
    for lg in _T.loggers:
        lg.finalize("success")

    from sigreg_core.integrations.alerts import AlertSink

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    al = AlertSink(url, min_interval=0, repeat=True, max_queue=1024)
    verdicts = ["healthy", "collapsed"]
    rows.append(("AlertSink, a transition each call (enqueue)",
                 timed(lambda i: (al.log_step(rec(2 * i, "healthy")), al.log_step(rec(2 * i + 1, "collapsed"))), args.reps) / 2))
    al.flush(60)
    quiet = AlertSink(url, min_interval=0)
    rows.append(("AlertSink, no transition", timed(lambda i: quiet.log_step(rec(i, verdicts[0])), args.reps)))
    t0 = time.perf_counter()
    one = AlertSink(url, min_interval=0)
    one.log_step(rec(1, "collapsed"))
    one.flush(30)
    post = time.perf_counter() - t0
    al.close()
    httpd.shutdown()

    print(f"N={args.n} D={args.d} M={args.m} reps={args.reps} torch threads={torch.get_num_threads()}")
    print(f"{'what':58s} {'ms / logged step':>17s} {'% of summary':>13s}")
    for name, t in rows:
        print(f"{name:58s} {t * 1e3:17.3f} {100 * t / t_sum:12.2f}%")
    print(f"(off the training thread: one webhook POST to 127.0.0.1 took {post * 1e3:.1f} ms end to end)")


if __name__ == "__main__":
    main()
