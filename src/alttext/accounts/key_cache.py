"""A few seconds of memory for checked API keys, with revocation that takes effect at once.

Every API request presents a key; looking it up is a database round trip (three on SQLite:
begin, select, rollback) before any work. :class:`KeyCache` keeps the answer, the
:class:`~alttext.accounts.service.Principal`, for ``ALTTEXT_KEY_CACHE_TTL_S`` seconds (5 by
default; 0 turns the cache off), keyed by the key's SHA-256 (the secret itself is not kept) and
compared in constant time as the database lookup is. Only successes are kept: an unknown key
is looked up every time.

**Invalidation.** The cache watches the process's own database sessions
(:meth:`KeyCache.watch`): when a transaction commits a change to what a Principal carries — a
key revoked or deleted, an account's status (suspension, erasure), restriction, history
opt-in or rate limit, an account deleted — the entries of that key or account are dropped in
this process at the commit, before the caller goes on (API, dashboard, CLI and privacy
requests alike: they all write through these sessions). A bulk UPDATE or DELETE of those
columns whose rows cannot be told drops every entry. Changes to other columns (the balance,
``last_used_at``) keep the cache.

**Other processes.** With ``ALTTEXT_REDIS_URL`` the invalidation is also published on the Redis
channel ``alttext:keys:invalidate:<database number>`` (awaited before a ``db.transaction``
block returns, so before the API answers the revocation), and every process subscribed to it
drops the same entries when the message arrives, typically within a millisecond. A process
keeps entries only while its subscription is known to be live (confirmed by Redis, and
answering a ping every second): when the channel cannot be reached or goes silent for 3
seconds, the cache is off in that process (every request looks its key up, as without a cache)
and emptied, and it is filled again only after a new subscription is confirmed, so a message
lost in an outage cannot leave a revoked key trusted. Without Redis the process has no way to
hear of changes made by another process (the CLI): those take effect within the TTL.

A lookup that raced an invalidation (read before the change committed, answered after the
entry was dropped) is not stored: every invalidation moves an epoch that a fill must match.

**One lookup per key at a time.** While the cache is active, requests that present the same key
while its lookup runs wait for that lookup instead of running their own (a burst of 1,000
requests with a new key is one query, not 1,000): they share its Principal, or its error (an
unknown key's 401 too, which is not kept). An invalidation lets later requests start a fresh
lookup rather than wait for one that may have read the row before the change; if the looking
request is cancelled, a waiting one looks the key up itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession, async_session, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session

from alttext.accounts.models import Account, ApiKey
from alttext.accounts.service import Principal, key_digest, principal_for_digest
from alttext.db import after_commit

if TYPE_CHECKING:
    from redis.asyncio import Redis

# redis-py is imported only where a Redis URL is configured: it takes about a tenth of a second,
# which every command-line write would pay for nothing on a deployment without Redis.

log = logging.getLogger("alttext.keys")

MAX_ENTRIES = 10_000
PING_S = 1.0  # the subscription is pinged this often ...
SILENT_S = 3.0  # ... and counted as lost when nothing came back for this long
RETRY_S = 2.0  # a lost subscription is tried again after this pause
PUBLISH_TIMEOUT_S = 1.0

# Columns whose change cannot make a cached Principal wrong; every other column of the two
# tables (a new one too) invalidates.
_HARMLESS = {
    "accounts": frozenset(
        {
            "credits_balance",
            "name",
            "email",
            "email_verified_at",
            "password_hash",
            "product_email_opt_in",
            "stripe_customer_id",
        }
    ),
    "api_keys": frozenset({"last_used_at", "name"}),
}
_PENDING = "alttext_key_cache_pending"


@dataclass
class Invalidation:
    """What a committed transaction changed: keys, accounts, or (``everything``) unknown rows."""

    keys: set[str] = field(default_factory=set)
    accounts: set[str] = field(default_factory=set)
    everything: bool = False

    def __bool__(self) -> bool:
        return self.everything or bool(self.keys or self.accounts)

    def to_json(self, sender: str) -> str:
        return json.dumps(
            {
                "from": sender,
                "k": sorted(self.keys),
                "a": sorted(self.accounts),
                "all": self.everything,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> tuple[str, Invalidation]:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not an invalidation")
        return str(data.get("from", "")), cls(
            keys={str(k) for k in data.get("k", [])},
            accounts={str(a) for a in data.get("a", [])},
            everything=bool(data.get("all", False)),
        )


@dataclass(frozen=True)
class _Entry:
    key_hash: str
    principal: Principal
    expires: float


class KeyCache:
    """See the module docstring. One per process (``process.open_process`` builds it)."""

    def __init__(
        self,
        ttl_s: float,
        *,
        redis_url: str | None = None,
        namespace: str = "alttext",
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.channel = _channel(namespace, redis_url)
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        # Lookups under way, by digest: requests with the same key wait for the one running.
        self._flights: dict[str, asyncio.Future[Principal | None]] = {}
        self._epoch = 0
        self._sender = f"{os.getpid()}-{id(self):x}"
        self._redis_url = redis_url
        # Without Redis nothing can be missed; with it, only a confirmed subscription counts.
        self._live = redis_url is None
        self._publisher: Redis | None = None
        self._listener: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()
        self._down_logged = False

    # -- lookups -----------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether entries are kept and served right now."""
        return self.ttl_s > 0 and self._live

    def __len__(self) -> int:
        return len(self._entries)

    async def authenticate(
        self, sessions: async_sessionmaker[AsyncSession], secret: str
    ) -> Principal:
        """The caller of ``secret``: from memory when a live entry exists, else one query."""
        digest = key_digest(secret)
        while True:
            entry = self._entries.get(digest)
            if entry is not None:
                if self.active and entry.expires > self._clock():
                    # The dict matched on equality; the check that grants access is
                    # constant-time.
                    if hmac.compare_digest(entry.key_hash, digest):
                        return entry.principal
                else:
                    self._entries.pop(digest, None)
            flight = self._flights.get(digest)
            if flight is None:
                return await self._lookup(sessions, digest)
            # Another request is looking this key up: share its answer or its error. Shielded,
            # so a waiter that is cancelled does not cancel the lookup of the others.
            principal = await asyncio.shield(flight)
            if principal is not None:
                return principal
            # The looking request was cancelled before an answer: start over (one leads again).

    async def _lookup(self, sessions: async_sessionmaker[AsyncSession], digest: str) -> Principal:
        """One database lookup that requests presenting the same key meanwhile wait for (with
        the cache active: the cache off, every request looks its key up)."""
        epoch = self._epoch
        flight: asyncio.Future[Principal | None] = asyncio.get_running_loop().create_future()
        flight.add_done_callback(_retrieved)
        if self.active:
            self._flights[digest] = flight
        try:
            async with sessions() as session:
                principal = await principal_for_digest(session, digest)
        except Exception as exc:
            flight.set_exception(exc)  # an unknown key's 401 too: shared, never kept
            raise
        except BaseException:
            flight.set_result(None)
            raise
        finally:
            if self._flights.get(digest) is flight:
                del self._flights[digest]
        self._store(digest, principal, epoch)
        flight.set_result(principal)
        return principal

    def _store(self, digest: str, principal: Principal, epoch: int) -> None:
        if not self.active or epoch != self._epoch:
            return  # off, or an invalidation ran while this lookup was in flight
        if len(self._entries) >= self._max_entries:
            now = self._clock()
            self._entries = {d: e for d, e in self._entries.items() if e.expires > now}
            while len(self._entries) >= self._max_entries:
                self._entries.pop(next(iter(self._entries)))  # the oldest
        self._entries[digest] = _Entry(digest, principal, self._clock() + self.ttl_s)

    # -- invalidation ------------------------------------------------------------------------

    def invalidate(self, change: Invalidation) -> None:
        """Drop the entries ``change`` names, in this process only."""
        self._epoch += 1
        # A lookup under way may have read the row before the change: requests arriving from
        # now on look the key up afresh rather than wait for it.
        self._flights.clear()
        if change.everything:
            self._entries.clear()
            return
        if not self._entries:
            return
        self._entries = {
            digest: entry
            for digest, entry in self._entries.items()
            if entry.principal.key_id not in change.keys
            and entry.principal.account_id not in change.accounts
        }

    def clear(self) -> None:
        self.invalidate(Invalidation(everything=True))

    async def publish(self, change: Invalidation) -> None:
        """Tell the other processes (with Redis); a failure is logged, never raised."""
        if self._publisher is None or not change:
            return
        from redis.exceptions import RedisError

        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await self._publisher.publish(self.channel, change.to_json(self._sender))
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning(
                "could not publish an API key invalidation (%s); other processes drop the "
                "entry within ALTTEXT_KEY_CACHE_TTL_S",
                type(exc).__name__,
            )

    def committed(self, change: Invalidation, session: Session) -> None:
        """A transaction that changed keys or accounts committed: drop here, tell the others."""
        self.invalidate(change)
        if self._publisher is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a synchronous caller: nobody to publish with
            log.warning("an API key invalidation could not be published (no event loop)")
            return
        task = loop.create_task(self.publish(change))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)
        proxy = async_session(session)
        if proxy is not None:
            # db.transaction awaits this before it returns: the message is out before the
            # revocation is answered.
            after_commit(proxy, lambda: asyncio.shield(task))

    # -- watching the process's sessions ------------------------------------------------------

    def watch(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Install the change detection on the sessions this factory makes (module docstring)."""
        base = sessions.kw.get("sync_session_class") or Session
        watched: type[Session] = type("KeyWatchedSession", (base,), {})
        event.listen(watched, "after_flush", _collect_flushed)
        event.listen(watched, "do_orm_execute", _collect_bulk)
        event.listen(watched, "after_commit", self._after_commit)
        sessions.configure(sync_session_class=watched)

    def _after_commit(self, session: Session) -> None:
        change = session.info.pop(_PENDING, None)
        if change:
            self.committed(change, session)

    # -- the Redis channel ---------------------------------------------------------------------

    def start(self) -> None:
        """Connect to the channel in the background (with Redis); call inside the event loop."""
        if self._redis_url is None or self._listener is not None:
            return
        self._publisher = _client(self._redis_url, socket_timeout=0.5)
        self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._publishing:
            await asyncio.gather(*self._publishing, return_exceptions=True)
        if self._publisher is not None:
            await self._publisher.aclose()
            self._publisher = None
        self._entries.clear()

    def _set_live(self, live: bool) -> None:
        if live != self._live:
            self._live = live
            self.clear()  # messages may have been missed while the channel was down
        if live:
            if self._down_logged:
                log.info("API key invalidation channel back; key cache on again")
            self._down_logged = False
        elif not self._down_logged:
            self._down_logged = True
            log.warning(
                "API key invalidation channel unreachable; every request looks its key up "
                "until it is back (retrying every %.0f s)",
                RETRY_S,
            )

    async def _listen(self) -> None:
        from redis.exceptions import RedisError

        assert self._redis_url is not None
        loop = asyncio.get_running_loop()
        while True:
            client = _client(self._redis_url, socket_timeout=None)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                heard = next_ping = loop.time()
                while True:
                    message = await pubsub.get_message(timeout=PING_S / 2)
                    now = loop.time()
                    if message is not None:
                        heard = now
                        self._receive(message)
                    if now >= next_ping:
                        next_ping = now + PING_S
                        await pubsub.ping()
                    if now - heard > SILENT_S:
                        raise TimeoutError("no answer on the invalidation channel")
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError, ValueError) as exc:
                self._set_live(False)
                log.debug("invalidation channel lost: %s", type(exc).__name__)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(RETRY_S)

    def _receive(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            self._set_live(True)  # from now on every invalidation reaches this process
        elif kind == "message":
            try:
                sender, change = Invalidation.from_json(message["data"])
            except (ValueError, TypeError, KeyError):
                log.warning("ignored a malformed message on the key invalidation channel")
                return
            if sender != self._sender:
                self.invalidate(change)


def _retrieved(flight: asyncio.Future[Principal | None]) -> None:
    """Mark a shared failure as seen: nobody may have waited for it (asyncio would log it)."""
    if not flight.cancelled():
        flight.exception()


def _channel(namespace: str, redis_url: str | None) -> str:
    """Pub/sub channels are shared by every database of a Redis server; the database number in
    the name keeps deployments (and test runs) on different databases apart."""
    db = 0
    if redis_url:
        from redis.asyncio.connection import parse_url

        with contextlib.suppress(ValueError, TypeError):
            db = int(parse_url(redis_url).get("db", 0))
    return f"{namespace}:keys:invalidate:{db}"


def _client(url: str, *, socket_timeout: float | None) -> Redis:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    # No retries inside redis-py: the listener's own loop is the retry, and a publish that
    # cannot go out at once is logged rather than holding up the request.
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )


# -- change detection (SQLAlchemy session events) ----------------------------------------------


def _pending(session: Session) -> Invalidation:
    change: Invalidation | None = session.info.get(_PENDING)
    if change is None:
        change = session.info[_PENDING] = Invalidation()
    return change


def _changed(obj: object, harmless: frozenset[str]) -> bool:
    state = inspect(obj)
    return any(attr.key not in harmless and attr.history.has_changes() for attr in state.attrs)


def _collect_flushed(session: Session, _flush_context: object) -> None:
    """ORM changes (a key's ``revoked_at``, an account's status or restriction, deletions)."""
    for obj in session.deleted:
        if isinstance(obj, ApiKey):
            _pending(session).keys.add(obj.id)
        elif isinstance(obj, Account):
            _pending(session).accounts.add(obj.id)
    for obj in session.dirty:
        if isinstance(obj, ApiKey) and _changed(obj, _HARMLESS["api_keys"]):
            _pending(session).keys.add(obj.id)
        elif isinstance(obj, Account) and _changed(obj, _HARMLESS["accounts"]):
            _pending(session).accounts.add(obj.id)


def _collect_bulk(state: ORMExecuteState) -> None:
    """``UPDATE``/``DELETE`` statements on the two tables: which rows is not known here, so a
    relevant one drops every entry (they are rare: a dispute, an erasure, the retention sweep)."""
    if not (state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    name = getattr(table, "name", None)
    if name not in _HARMLESS:
        return
    if state.is_update and _set_columns(state) <= _HARMLESS[name]:
        return
    _pending(state.session).everything = True


def _set_columns(state: ORMExecuteState) -> frozenset[str]:
    """The columns an UPDATE sets; an unknown shape counts as every column."""
    values: Iterable[Any] | None = getattr(state.statement, "_values", None)
    names: set[str] = set()
    if values:
        names.update(getattr(k, "key", None) or getattr(k, "name", None) or str(k) for k in values)
    params = state.parameters
    rows = params if isinstance(params, list) else [params] if params else []
    for row in rows:
        if isinstance(row, Mapping):
            names.update(str(k) for k in row)
    names.discard("id")  # a bulk update by primary key names the rows, not what changes
    return frozenset(names) if names else frozenset({"<unknown>"})
