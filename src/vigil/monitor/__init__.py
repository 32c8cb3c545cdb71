"""Monitoring: windows over the inference log, metric time series, alert rules, webhooks.

:mod:`~vigil.monitor.windows` cuts the log, :mod:`~vigil.monitor.measure` measures a
window against the version's :mod:`~vigil.monitor.baseline`, :mod:`~vigil.monitor.engine`
computes what is due and :mod:`~vigil.monitor.series` stores it (data quality by
:mod:`~vigil.monitor.quality`, accuracy and error by :mod:`~vigil.monitor.performance`, both
usable offline); :mod:`~vigil.monitor.rules`
and :mod:`~vigil.monitor.alerts` turn the series into alert events, which
:mod:`~vigil.monitor.notify` posts to webhooks. :mod:`~vigil.monitor.cycle` runs all of it
once (``vigil monitor run``), :mod:`~vigil.monitor.scheduler` on a schedule inside the
server, and :mod:`~vigil.monitor.exporter` publishes the gauges on ``/metrics``.
"""
