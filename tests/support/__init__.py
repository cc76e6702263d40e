"""What tests and benchmarks share to drive real processes: waiting for a condition, and running
the console script or another command as a child process."""
