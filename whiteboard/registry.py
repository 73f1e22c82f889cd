"""The board hubs of one server process, and the one channel they listen on.

Each process has a single channel-layer channel and a single receive loop: the
channel joins the group of every board that has a local connection, and each
event is handed to that board's hub. Nothing is cancelled when a board empties
(its group membership is dropped instead), because cancelling a pending
channels_redis receive can lose a message that was meant for another board.
"""

import asyncio
import logging
import os
import secrets
import socket
import sys
import weakref

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from . import broadcast, services
from .committer import GroupCommitter
from .hub import BoardHub

logger = logging.getLogger(__name__)

# Channel layers forget a group member after a day (group_expiry); each live
# board's membership is renewed well before that.
GROUP_REFRESH = 600.0
CLOSE_WAIT = 5.0

touch = database_sync_to_async(services.presence_touch)


class Registry:
    """The hubs of one event loop (one server process) and their upkeep."""

    def __init__(self):
        self.hubs = {}
        self.by_slug = {}
        self.server = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.channel = None
        self.listening = None
        self.listener = None
        self.group_tasks = {}
        self.upkeep = None
        self.committer = GroupCommitter()
        self.watch_shutdown()

    # -- hubs ---------------------------------------------------------------

    def hub(self, board_id, slug, limits):
        hub = self.hubs.get(board_id)
        if hub is None:
            hub = self.hubs[board_id] = BoardHub(self, board_id, slug, limits)
            self.by_slug[slug] = hub
        if self.upkeep is None:
            loop = asyncio.get_running_loop()
            self.upkeep = loop.create_task(self.keep_up(limits.heartbeat_seconds))
        return hub

    def forget_if_unused(self, hub):
        """Retire a hub with no connections and nothing left to commit."""
        if (
            hub.members
            or hub.task is not None
            or self.hubs.get(hub.board_id) is not hub
        ):
            return
        del self.hubs[hub.board_id]
        del self.by_slug[hub.slug]
        hub.close()
        self.in_order(hub.group, self.discard_action(hub.group))

    # -- the process's channel -------------------------------------------------

    async def join_group(self, group):
        if self.listening is None:
            self.listening = asyncio.get_running_loop().create_task(self.start())
        await asyncio.shield(self.listening)
        await asyncio.shield(self.in_order(group, self.add_action(group)))

    async def start(self):
        layer = get_channel_layer()
        self.channel = await layer.new_channel()
        self.listener = asyncio.get_running_loop().create_task(self.listen(layer))

    def add_action(self, group):
        return lambda layer: layer.group_add(group, self.channel)

    def discard_action(self, group):
        return lambda layer: layer.group_discard(group, self.channel)

    def in_order(self, group, action):
        """Run a membership change after the previous one for the same group."""
        previous = self.group_tasks.get(group)
        task = asyncio.get_running_loop().create_task(self.after(previous, action))
        self.group_tasks[group] = task
        task.add_done_callback(lambda done: self.settled(group, done))
        return task

    async def after(self, previous, action):
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        await action(get_channel_layer())

    def settled(self, group, task):
        if self.group_tasks.get(group) is task:
            del self.group_tasks[group]
        if not task.cancelled() and task.exception() is not None:
            logger.warning(
                "Group change for %s failed", group, exc_info=task.exception()
            )

    async def listen(self, layer):
        """Receive every event once and hand it to its board's hub."""
        while True:
            try:
                event = await layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Ops missed meanwhile are fetched from the database by the
                # connections when the next batch shows the gap.
                logger.warning("Receiving board events failed", exc_info=True)
                await asyncio.sleep(1)
                continue
            handler = broadcast.HANDLERS.get(event.get("type"))
            hub = self.by_slug.get(event.get("board"))
            if handler is None:
                logger.warning("Ignored unknown event %r", event.get("type"))
            elif hub is not None:
                await hub.dispatch(handler, event)

    # -- upkeep ---------------------------------------------------------------

    async def keep_up(self, heartbeat_seconds):
        """Refresh presence every heartbeat and group membership every few minutes."""
        loop = asyncio.get_running_loop()
        refreshed = loop.time()
        while True:
            await asyncio.sleep(heartbeat_seconds)
            sids = [sid for hub in self.hubs.values() for sid in hub.members]
            try:
                await touch(server=self.server, sids=sids)
            except Exception:
                logger.warning("Could not refresh presence", exc_info=True)
            if loop.time() - refreshed >= GROUP_REFRESH and self.channel is not None:
                refreshed = loop.time()
                for hub in list(self.hubs.values()):
                    self.in_order(hub.group, self.add_action(hub.group))

    # -- stopping --------------------------------------------------------------

    def watch_shutdown(self):
        """Under daphne, close every socket gracefully before the reactor stops.

        daphne's own shutdown only cancels applications, so clients would see
        the TCP connection drop (1006) instead of `bye` + 1012; and in daphne
        4.2 it raises KeyError, skipping even that, when any HTTP connection
        has not sent a request yet. A "before shutdown" trigger that returns a
        Deferred makes the reactor wait for us.
        """
        reactor = sys.modules.get("twisted.internet.reactor")
        if reactor is not None and hasattr(reactor, "_asyncioEventloop"):
            reactor.addSystemEventTrigger("before", "shutdown", self.before_shutdown)

    def before_shutdown(self):
        from twisted.internet.defer import Deferred

        stop_listening(sys.modules["twisted.internet.reactor"])
        return Deferred.fromFuture(asyncio.ensure_future(self.shut_down()))

    async def shut_down(self):
        """Say bye to every connection, then stop this registry's tasks."""
        members = [c for hub in list(self.hubs.values()) for c in hub.members.values()]
        logger.info("Closing %d connections before the server stops", len(members))
        await asyncio.gather(*(c.shut_down() for c in members), return_exceptions=True)
        await self.close()

    async def close(self):
        """Stop every task of this registry; the event loop may end after this.

        A task left pending would be finalised with the interpreter, or, in the
        tests, hold the channel layer's locks bound to a loop that is gone.
        """
        for hub in self.hubs.values():
            hub.close()
        await self.settle("group changes", list(self.group_tasks.values()))
        tasks = [t for t in (self.listening, self.listener, self.upkeep) if t]
        for task in tasks:
            task.cancel()
        await self.settle("receiving", tasks)
        await self.finish_layer_cleanup()
        self.listening = self.listener = self.upkeep = self.channel = None

    async def finish_layer_cleanup(self):
        """Let channels_redis finish the cleanup of the messages it handed over.

        Each receive leaves a task that removes the message from Redis' backup
        queue and only then releases the channel's receive lock. If the event
        loop ended first, the message would come again after a restart, and in
        the tests, where every test has a loop of its own, the lock stayed held
        by a dead loop: every later receive failed ("bound to a different event
        loop").
        """
        layer = get_channel_layer()
        wait_received = getattr(layer, "wait_received", None)
        if wait_received is None:
            return
        try:
            await asyncio.wait_for(wait_received(), CLOSE_WAIT)
        except TimeoutError:
            logger.warning("Redis cleanup after receiving did not finish in time")

    @staticmethod
    async def settle(what, tasks):
        done, pending = (
            await asyncio.wait(tasks, timeout=CLOSE_WAIT) if tasks else ((), ())
        )
        if pending:
            logger.warning(
                "%s did not finish within %s s", what.capitalize(), CLOSE_WAIT
            )


_registries = weakref.WeakKeyDictionary()


def registry():
    """The registry of the running event loop (tests run one loop per test)."""
    loop = asyncio.get_running_loop()
    found = _registries.get(loop)
    if found is None:
        found = _registries[loop] = Registry()
    return found


def stop_listening(reactor):
    """Accept no new connection once the server is stopping.

    Otherwise a client told `bye` reconnects at once to the process that is
    closing, and its application starts while the event loop winds down (seen
    to end in a crash of the whole process).
    """
    from twisted.internet.tcp import Port

    for reader in list(reactor.getReaders()):
        if isinstance(reader, Port):
            reader.stopListening()
