"""A fake Microsoft Graph tenant: the embedded default for demo, tests and benchmarks."""
