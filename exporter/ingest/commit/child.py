"""The audit commit process: `python -m exporter.ingest.commit.child --store PATH ...`, started by
`exporter.ingest.commit.parent.CommitProcess`, never by hand.

It opens its own connection to the exporter's SQLite store (WAL: the exporter's reads never
wait for it, and the two processes' writes take turns) with its own processing-lag consumer,
and runs `Store.commit_audit_pages` for each request from its parent, in order, one
transaction each, exactly as the store's thread would. So the exactly-once argument of
`exporter.store.database` holds unchanged: a commit is one transaction, whichever process runs it.

It ignores SIGINT and SIGTERM (a Ctrl-C or a service manager reaches every process of the
group; the parent decides when to stop) and exits when its stdin closes, after the request it
is committing: the parent closing it, or the parent dying (kill -9 included).
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from typing import BinaryIO

from exporter.ingest.commit.wire import (
    READY_ID,
    REQUEST_DECODER,
    CommitReply,
    frame,
    read_frame,
)
from exporter.store.database import Store
from exporter.store.lag import ProcessingLagConsumer


def serve(store: Store, requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer every request until `requests` ends."""
    while (payload := read_frame(requests)) is not None:
        request = REQUEST_DECODER.decode(payload)
        try:
            outcome = store.commit_audit_pages(request.tenant, request.batches)
        except Exception as exc:  # the transaction was rolled back: the parent retries later
            reply = CommitReply(request.id, {}, f"{type(exc).__name__}: {exc}")
        else:
            reply = CommitReply(request.id, dict(outcome.counted))
        replies.write(frame(reply))
        replies.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exporter.ingest.commit.child")
    parser.add_argument("--store", required=True, help="the exporter's SQLite file")
    parser.add_argument("--lag-horizon", type=float, required=True)
    parser.add_argument("--lag-window", type=float, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Replies get a private copy of stdout; fd 1 becomes stderr, so that nothing a library
    # prints can land inside a frame.
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    consumer = ProcessingLagConsumer(horizon=args.lag_horizon, sample_window=args.lag_window)
    store = Store(args.store, (consumer,))
    try:
        store.connect()
    except Exception as exc:
        replies.write(frame(CommitReply(READY_ID, {}, f"{type(exc).__name__}: {exc}")))
        replies.flush()
        return 1
    # What is alive now lives as long as the process: later collections skip it.
    gc.freeze()
    try:
        replies.write(frame(CommitReply(READY_ID, {})))
        replies.flush()
        serve(store, requests, replies)
    except BrokenPipeError:  # the parent is gone; what was committed stays committed
        return 0
    finally:
        store.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
