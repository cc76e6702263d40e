"""entra-dg-exporter: observability and safe operations for Entra ID dynamic group processing."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("entra-dg-exporter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
