"""A channels_redis cleanup task that fails while Redis is away is logged as
one warning, not as a "Task exception was never retrieved" traceback; every
other unhandled task error still reaches the loop's handler."""

import asyncio
import gc
import logging

import redis.exceptions

from whiteboard.realtime.process import quiet_receive_cleanup


class RedisChannelLayer:  # named as channels_redis names its class
    async def _clean_receive_backup(self, index, channel):
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1")


async def a_bug():
    raise ValueError("a bug")


async def test_a_failed_receive_cleanup_is_one_warning_and_other_errors_pass(caplog):
    loop = asyncio.get_running_loop()
    reported = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    quiet_receive_cleanup(loop)
    quiet_receive_cleanup(loop)  # installed once per loop
    cleanup = loop.create_task(RedisChannelLayer()._clean_receive_backup(0, "ch"))
    bug = loop.create_task(a_bug())
    with caplog.at_level(logging.WARNING, logger="whiteboard.realtime.process"):
        await asyncio.wait([cleanup, bug])
        del cleanup, bug  # never retrieved: asyncio reports them when collected
        gc.collect()
    assert [type(context["exception"]) for context in reported] == [ValueError]
    assert "backup copy was not removed from Redis" in caplog.text
    assert "Error 111" in caplog.text
