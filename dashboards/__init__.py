"""Grafana dashboards: grafanalib sources (*.dashboard.py), generated JSON, provisioning."""
