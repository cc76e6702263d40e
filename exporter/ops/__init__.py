"""Pause, resume and plan operations, with the ledger."""
