"""Group commit: the op batches of every board of a process in one transaction.

Each board's hub commits its own batch once per tick; with many boards that was
one transaction, and with SQLite's synchronous=FULL one sync to disk, per board
per tick, all queued on the one database thread: measured with bench/run.py
`many` (1,000 connections over 100 boards, 1 op/s each), the commits could not
keep up and latency grew to seconds. Here the batches that hubs hand in while
a transaction is running wait for the next one, which commits them all; each
board's batch still runs in its own savepoint, so a failure in one board's
batch rolls back that batch only.
"""

import asyncio

from channels.db import database_sync_to_async

from . import services

commit_boards = database_sync_to_async(services.ops_commit_boards)


class GroupCommitter:
    """Collects (board, requests) batches and commits them together."""

    def __init__(self):
        self.waiting = []
        self.task = None

    async def commit(self, board_id, requests, limits):
        """Commit one board's batch with whatever else is waiting; its CommitResult."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiting.append((board_id, requests, limits, future))
        if self.task is None:
            self.task = loop.create_task(self.run())
        return await future

    async def run(self):
        try:
            while self.waiting:
                group, self.waiting = self.waiting, []
                try:
                    results = await commit_boards(batches=[g[:3] for g in group])
                except Exception as exc:  # the whole transaction failed
                    results = [exc] * len(group)
                for (*_, future), result in zip(group, results, strict=True):
                    settle(future, result)
        finally:
            self.task = None


def settle(future, result):
    if future.done():  # the waiting hub was cancelled
        return
    if isinstance(result, Exception):
        future.set_exception(result)
    else:
        future.set_result(result)
