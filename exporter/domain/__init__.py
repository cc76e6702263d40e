"""Pure, deterministic logic: no I/O, "now" is always an argument."""
