"""Prometheus alert and recording rules, generated from one Python source (mixin-style).

`alerts.config` holds every selector and threshold; `alerts.rules` turns them into rules;
`python -m alerts.build` writes the committed YAML. The dashboards read the same config.
"""
