"""Weights & Biases: latent-health numbers and the per-slice histogram through ``wandb.log``.

At each logged step :class:`WandbSink` logs, on the user's run, the headline numbers of
:func:`sigreg_core.integrations.base.headline` under one key prefix (default
``latent_health``): ``sigreg`` (SIGReg: the mean over M slices of the Epps–Pulley statistic
``EP(x) = N sum_k c_k [(mean cos(t_k x) - exp(-t_k^2/2))^2 + (mean sin(t_k x))^2]``,
LeJEPA arXiv 2511.08544), ``sigreg_over_null``, ``log10_p``, ``severity`` (0 healthy,
1 mild, 2 marked, 3 severe, 4 collapsed), ``rankme``, ``normalized_std``, the verdict as text
(``<prefix>/verdict``), the training step (``<prefix>/step``) and the M per-slice
statistics as a ``wandb.Histogram`` (``<prefix>/slice_statistic``).

W&B's own step counter advances with every ``wandb.log`` call, so the sink declares
``<prefix>/step`` as the x-axis of its keys (``run.define_metric``): the charts line up with
the training step whatever else the user logs.  Needs ``wandb`` (``pip install
latent-health[wandb]``); offline mode (``WANDB_MODE=offline``) works without an account::

    import wandb
    from sigreg_core.runs import RunWriter
    from sigreg_core.integrations.wandb import WandbSink
    run = wandb.init(project="my-ssl")
    writer = RunWriter("runs/my-run", every=100, sinks=[WandbSink(run)])
"""
from __future__ import annotations

from typing import Any, Union

from sigreg_core.integrations.base import StepRecord, headline, per_slice_values
from sigreg_core.runs.alerts import AlertRule, AlertTracker

__all__ = ["WandbSink", "DEFAULT_PREFIX"]

DEFAULT_PREFIX = "latent_health"


def _wandb():
    try:
        import wandb  # noqa: PLC0415 - optional dependency, imported on first use
    except ImportError:
        raise ImportError("WandbSink needs Weights & Biases: pip install wandb (or latent-health[wandb])") from None
    return wandb


class WandbSink:
    """Log each summarised step to a W&B run.

    Parameters
    ----------
    run: the ``wandb.Run`` to log to (``wandb.init(...)``'s return value, or a Lightning
        ``WandbLogger``'s ``experiment``); None to use the active ``wandb.run`` at each step.
    prefix: key prefix.
    histogram: False to skip the per-slice histogram.
    num_bins: bins of the histogram (W&B allows at most 512).
    alerts: the alert rule (:class:`~sigreg_core.runs.alerts.AlertRule`; True: the default rule, the one
        the Monitor page and :class:`~sigreg_core.integrations.alerts.AlertSink` use; False: none).  At an
        alert step the row also carries ``<prefix>/alert`` (the message) and the sink calls W&B's
        ``run.alert`` (an e-mail / Slack notice where the user set one up).
    """

    def __init__(self, run: Any = None, *, prefix: str = DEFAULT_PREFIX, histogram: bool = True,
                 num_bins: int = 64, alerts: Union[bool, AlertRule] = True) -> None:
        prefix = str(prefix).strip("/")
        if not prefix:
            raise ValueError("prefix must be a non-empty key prefix")
        if not 1 <= int(num_bins) <= 512:
            raise ValueError(f"num_bins must be in 1..512 (W&B's limit), got {num_bins}")
        self.prefix = prefix
        self.histogram = bool(histogram)
        self.num_bins = int(num_bins)
        self._run = run
        self._defined: set = set()
        self._alerts = None if alerts is False else AlertTracker(alerts if isinstance(alerts, AlertRule) else None)
        self.alerted: list = []  # the alert events logged

    def _current_run(self):
        run = self._run
        if run is not None and not hasattr(run, "log") and hasattr(run, "experiment"):
            run = self._run = run.experiment  # a Lightning WandbLogger
        if run is None:
            run = _wandb().run
            if run is None:
                raise RuntimeError("no active W&B run: call wandb.init() first or pass run=")
        return run

    def log_step(self, record: StepRecord) -> None:
        run = self._current_run()
        p = self.prefix
        if id(run) not in self._defined:
            run.define_metric(f"{p}/step")
            run.define_metric(f"{p}/*", step_metric=f"{p}/step")
            self._defined.add(id(run))
        data: dict = {f"{p}/step": int(record.step)}
        data.update({f"{p}/{k}": v for k, v in headline(record).items()})
        if record.verdict is not None:
            data[f"{p}/verdict"] = record.verdict
        if self.histogram:
            values = per_slice_values(record)
            if values is not None:
                data[f"{p}/slice_statistic"] = _wandb().Histogram(values, num_bins=self.num_bins)
        hit = None if self._alerts is None else self._alerts.update(int(record.step), record.verdict)
        message = None
        if hit is not None:
            from sigreg_core.integrations.alerts import alert_event, alert_message

            event = alert_event(record, hit)
            message = alert_message(event)
            data[f"{p}/alert"] = message
            self.alerted.append(event)
        run.log(data)
        if message is not None and callable(getattr(run, "alert", None)):
            run.alert(title=f"latent-health: {hit['verdict']} at step {int(record.step)}", text=message)

    def close(self) -> None:
        """Nothing to close: the run belongs to the user (``run.finish()``)."""
