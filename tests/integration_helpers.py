"""Helpers shared by the integration tests: an independent EP oracle, a .wandb reader, a webhook server."""
from __future__ import annotations

import json
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import torch


def ep_oracle(z: np.ndarray, num_slices: int, seed: int = 0) -> np.ndarray:
    """Per-slice Epps–Pulley statistic, preset ``lejepa``, written from SIGREG.md in float64.

    Directions: torch.randn(D, M) from a CPU generator seeded with ``seed``, columns
    normalised; nodes 17 on [0, 3], weight dt at both ends and 2 dt inside, window
    exp(-t^2/2); EP = N sum_k c_k [(mean cos t_k x - exp(-t_k^2/2))^2 + (mean sin t_k x)^2].
    """
    z = np.asarray(z, dtype=np.float64)
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(z.shape[1], num_slices, generator=g).double().numpy()
    a /= np.linalg.norm(a, axis=0, keepdims=True)
    x = z @ a                                            # (N, M)
    t = np.linspace(0.0, 3.0, 17)
    dt = t[1] - t[0]
    w = np.full(17, 2 * dt)
    w[0] = w[-1] = dt
    c = w * np.exp(-t ** 2 / 2)
    out = np.empty(num_slices)
    for m in range(num_slices):
        tx = np.outer(x[:, m], t)                        # (N, K)
        re = np.cos(tx).mean(0) - np.exp(-t ** 2 / 2)
        im = np.sin(tx).mean(0)
        out[m] = z.shape[0] * np.sum(c * (re ** 2 + im ** 2))
    return out


# --------------------------------------------------------------------------- .wandb files
_BLOCK = 32768
_HEADER = 7


def read_wandb_records(path):
    """The protobuf records of a ``run-<id>.wandb`` transaction log, parsed with wandb's own schema.

    The file is a 7-byte W&B header (":W&B", magic, version) followed by a LevelDB-style log:
    32 KiB blocks of chunks (crc32c 4 bytes, length 2 bytes LE, type 1 byte: 1 full,
    2 first, 3 middle, 4 last); a block tail under 7 bytes is padding.
    """
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", "not a W&B transaction log"
    pos, records, buf = _HEADER, [], b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:  # zero padding at the end of a block
            continue
        if kind == 1:
            buf = chunk
        elif kind == 2:
            buf = chunk
            continue
        elif kind == 3:
            buf += chunk
            continue
        elif kind == 4:
            buf += chunk
        else:
            raise ValueError(f"bad chunk type {kind} at {pos}")
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(buf)
        records.append(rec)
        buf = b""
    return records


def wait_for_wandb_log(path, timeout: float = 60.0) -> None:
    """Wait until the .wandb log holds its ``exit`` record.

    wandb-core writes the offline log asynchronously: ``run.finish()`` can return while the
    file still holds only its 7-byte header (seen with wandb 0.31 about one run in three).
    """
    import time

    from google.protobuf.message import DecodeError  # not a ValueError: a record cut mid-write

    deadline = time.monotonic() + timeout
    while True:
        try:
            if any(r.WhichOneof("record_type") == "exit" for r in read_wandb_records(path)):
                return
        except (OSError, ValueError, AssertionError, DecodeError):
            pass  # not written yet, or a chunk still being written
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path}: no exit record after {timeout} s")
        time.sleep(0.05)


def wandb_history(path) -> list:
    """Each history row of a .wandb file as a dict {key: decoded JSON value}."""
    rows = []
    for rec in read_wandb_records(path):
        if rec.WhichOneof("record_type") == "history":
            row = {}
            for item in rec.history.item:  # a dict value (a histogram) is stored as one item per field
                path = [item.key] if item.key else list(item.nested_key)
                d = row
                for part in path[:-1]:
                    d = d.setdefault(part, {})
                d[path[-1]] = json.loads(item.value_json)
            rows.append(row)
    return rows


def wandb_metrics(path) -> list:
    """The define_metric records of a .wandb file (name, step_metric)."""
    out = []
    for rec in read_wandb_records(path):
        if rec.WhichOneof("record_type") == "metric":
            out.append((rec.metric.name or rec.metric.glob_name, rec.metric.step_metric))
    return out


# --------------------------------------------------------------------------- webhook server
class WebhookServer:
    """A local HTTP server on 127.0.0.1 (free port) recording every POST; ``status`` sets its answer."""

    def __init__(self, status: int = 200, delay: float = 0.0):
        self.requests: list = []
        self.status = status
        self.delay = delay
        self.event = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's API
                import time

                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                       "time": time.monotonic()})
                if outer.delay:
                    time.sleep(outer.delay)
                self.send_response(outer.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                outer.event.set()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def json(self) -> list:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
