"""TensorBoard: latent-health scalars and a histogram of the per-slice statistics.

At each logged step :class:`TensorBoardSink` writes, under one tag prefix (default
``latent_health``), the headline numbers of :func:`sigreg_core.integrations.base.headline`
as scalars — ``sigreg`` (SIGReg: the mean over M slices of the Epps–Pulley statistic
``EP(x) = N sum_k c_k [(mean cos(t_k x) - exp(-t_k^2/2))^2 + (mean sin(t_k x))^2]``,
LeJEPA arXiv 2511.08544), ``sigreg_over_null`` (≈ 1 when healthy), ``log10_p``,
``severity`` (0 healthy, 1 mild, 2 marked, 3 severe, 4 collapsed), ``rankme``, ``normalized_std`` — and
the M per-slice statistics as one histogram (``<prefix>/slice_statistic``): a healthy
run's histogram sits around the null mean (≈ 1.05 for the default preset), a partial
collapse grows a tail to the right.

It writes through ``torch.utils.tensorboard.SummaryWriter`` (needs the ``tensorboard``
package: ``pip install latent-health[tensorboard]``), the user's own writer (any object
with ``add_scalar``/``add_histogram``, e.g. tensorboardX), or a Lightning
``TensorBoardLogger`` (its ``experiment``)::

    from sigreg_core.runs import RunWriter
    from sigreg_core.integrations.tensorboard import TensorBoardSink
    writer = RunWriter("runs/my-run", every=100, sinks=[TensorBoardSink(log_dir="tb/my-run")])
"""
from __future__ import annotations

import os
from typing import Any, Optional, Union

from sigreg_core.integrations.base import StepRecord, headline, per_slice_values
from sigreg_core.runs.alerts import AlertRule, AlertTracker

__all__ = ["TensorBoardSink", "DEFAULT_PREFIX"]

DEFAULT_PREFIX = "latent_health"


class TensorBoardSink:
    """Log each summarised step to TensorBoard.

    Parameters
    ----------
    writer: a ``SummaryWriter`` (or any object with ``add_scalar``/``add_histogram``), or a
        Lightning ``TensorBoardLogger``; None to open a ``torch.utils.tensorboard.SummaryWriter``
        on ``log_dir`` at the first logged step (closed by :meth:`close`).
    log_dir: where the sink's own writer writes (``runs/`` under the working directory when None,
        TensorBoard's default).
    prefix: tag prefix; the scalars are ``<prefix>/<key>`` and the histogram ``<prefix>/slice_statistic``.
    histogram: False to skip the per-slice histogram.
    alerts: the alert rule (:class:`~sigreg_core.runs.alerts.AlertRule`; True: the default rule, the one
        the Monitor page and :class:`~sigreg_core.integrations.alerts.AlertSink` use; False: none).  At an
        alert step the sink writes the message as text under ``<prefix>/alert`` (TensorBoard's Text tab).
    flush: flush the event file after every logged step (the writer otherwise flushes every
        ``flush_secs``, 120 s by default; logged steps are rare, so flushing costs little and
        makes the step visible in TensorBoard at once).
    """

    def __init__(self, writer: Any = None, *, log_dir: Optional[Union[str, os.PathLike]] = None,
                 prefix: str = DEFAULT_PREFIX, histogram: bool = True, flush: bool = True,
                 alerts: Union[bool, AlertRule] = True) -> None:
        prefix = str(prefix).strip("/")
        if not prefix:
            raise ValueError("prefix must be a non-empty tag prefix")
        self.prefix = prefix
        self.histogram = bool(histogram)
        self.flush = bool(flush)
        self.log_dir = None if log_dir is None else str(log_dir)
        self._given = writer
        self._writer = None
        self._owned = writer is None
        self._alerts = None if alerts is False else AlertTracker(alerts if isinstance(alerts, AlertRule) else None)
        self.alerted: list = []  # the alert events written

    @property
    def writer(self):
        """The underlying SummaryWriter (opened on first use when the sink owns it)."""
        if self._writer is None:
            if self._given is None:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:
                    raise ImportError("TensorBoardSink needs TensorBoard: pip install tensorboard "
                                      "(or latent-health[tensorboard])") from None
                self._writer = SummaryWriter(log_dir=self.log_dir)
            elif not hasattr(self._given, "add_scalar") and hasattr(self._given, "experiment"):
                self._writer = self._given.experiment  # a Lightning TensorBoardLogger
            else:
                self._writer = self._given
        return self._writer

    def log_step(self, record: StepRecord) -> None:
        w = self.writer
        step = int(record.step)
        for key, value in headline(record).items():
            w.add_scalar(f"{self.prefix}/{key}", value, step)
        if self.histogram:
            values = per_slice_values(record)
            if values is not None:
                w.add_histogram(f"{self.prefix}/slice_statistic", values, step)
        hit = None if self._alerts is None else self._alerts.update(step, record.verdict)
        if hit is not None and hasattr(w, "add_text"):
            from sigreg_core.integrations.alerts import alert_event, alert_message

            event = alert_event(record, hit)
            w.add_text(f"{self.prefix}/alert", alert_message(event), step)
            self.alerted.append(event)
        if self.flush and hasattr(w, "flush"):
            w.flush()

    def close(self) -> None:
        if self._writer is None:
            return
        if self._owned:
            self._writer.close()
            self._writer = None
        elif hasattr(self._writer, "flush"):
            self._writer.flush()
