"""The message queue (taskiq): in-process by default, Redis streams when ``ALTTEXT_REDIS_URL``.

Messages only wake work up; the database says what is to be done (job items with leases), so a
message lost with a killed worker costs a delay, never an item: the jobs sweep sends it again.
That is why messages are acknowledged on receipt rather than after the work.

Embedded (no Redis): taskiq's ``InMemoryBroker`` runs each message as a task of this process's
event loop. Scaled out: ``RedisStreamBroker`` with one consumer group; every ``alttext worker``
reads from it and API processes only send.
"""

from __future__ import annotations

from taskiq import AsyncBroker, InMemoryBroker
from taskiq_redis import RedisStreamBroker

QUEUE_NAME = "alttext:queue"
CONSUMER_GROUP = "alttext-workers"


def build_broker(redis_url: str | None, *, max_async_tasks: int) -> AsyncBroker:
    if redis_url is None:
        return InMemoryBroker(max_async_tasks=max_async_tasks, propagate_exceptions=False)
    return RedisStreamBroker(
        redis_url,
        queue_name=QUEUE_NAME,
        consumer_group_name=CONSUMER_GROUP,
        # A message claimed by a worker that died is handed to another after this long; the
        # sweep re-sends wake-ups sooner, so this is only a second net.
        idle_timeout=120_000,
        consumer_id="0",  # a group made after messages were sent still reads them
        maxlen=1_000_000,  # wake-ups only: old ones may go, the database keeps the work
        socket_timeout=5,
        socket_connect_timeout=5,
    )
