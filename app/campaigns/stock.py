"""A flash sale's seats in Redis: the first, fast answer to a purchase attempt.

One Lua script decides an attempt in one step (the sale's window, a seat left, the
family's limit, an attempt not seen before), takes the seat and queues the order to be
written. The winner's request ends there: a writer job (`write_flash_orders`, one per sale
at a time) writes the queued orders to the database in batches, their seats claimed by a
conditional UPDATE, and a seat the database refuses is given back here (`give_back`) and
the refusal kept for the family's page (`refuse`). So Redis turns away the crowd
cheaply, the winners' taps cost what the losers' do, and PostgreSQL keeps the truth.

Every key of a sale shares the hash tag `{<sale id>}` (one Redis Cluster slot):

  fs:{7}:ready     present once the counters below were built from the database
  fs:{7}:stock     seats left
  fs:{7}:buyers    hash: family's phone -> seats it holds (queued, pending or paid)
  fs:{7}:tries     hash: attempt key -> its order's code (a retried tap is the same attempt)
  fs:{7}:attempts  attempts counted (figures only)
  fs:{7}:queue     list: the orders to write, as JSON, oldest first
  fs:{7}:woken     present while a writer job is on its way (the script says to wake one)
  fs:{7}:writer    the lock of the writer job writing the queue (its token)
  fs:{7}:refused   hash: order code -> why the database refused it (for the family's page)

If Redis lost them (a restart, a FLUSHALL), no attempt is decided until they are built
again from the database (`rebuild`), under a short lock so one process does it; orders
still queued then are lost with them, and their families' pages say so.
"""

from __future__ import annotations

import enum
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from app.extensions import redis_connection

KEEP_SECONDS = 14 * 24 * 3600  # a sale's keys outlive it by this much
REBUILD_LOCK_SECONDS = 10
WRITER_LOCK_SECONDS = 60  # a writer that died lets another take the queue after this
WAKE_SECONDS = 30  # a writer job asked for and never started is asked for again after this


class Outcome(enum.IntEnum):
    RESERVED = 1
    SOLD_OUT = 0
    OVER_LIMIT = -1
    REPEATED = -2  # this attempt was already decided (it reserved a seat then)
    CLOSED = -3
    NOT_READY = -4  # the counters are gone: build them again first


_RESERVE = """
local ready, stock, buyers, tries, attempts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local queue, woken = KEYS[6], KEYS[7]
local now, starts, ends = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local phone, attempt, limit, keep = ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local code, order, wake_seconds = ARGV[8], ARGV[9], tonumber(ARGV[10])
if redis.call('EXISTS', ready) == 0 then return {-4} end
redis.call('INCR', attempts)
redis.call('EXPIRE', attempts, keep)
if now < starts or now >= ends then return {-3} end
local earlier = redis.call('HGET', tries, attempt)
if earlier then return {-2, earlier} end
if tonumber(redis.call('HGET', buyers, phone) or '0') >= limit then return {-1} end
if tonumber(redis.call('GET', stock) or '0') <= 0 then return {0} end
redis.call('DECR', stock)
redis.call('HINCRBY', buyers, phone, 1)
redis.call('HSET', tries, attempt, code)
redis.call('EXPIRE', tries, keep)
redis.call('RPUSH', queue, order)
redis.call('EXPIRE', queue, keep)
if redis.call('SET', woken, 1, 'NX', 'EX', wake_seconds) then return {1, code, 1} end
return {1, code, 0}
"""

_GIVE_BACK = """
local ready, stock, buyers, tries = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local phone, attempt = ARGV[1], ARGV[2]
if redis.call('EXISTS', ready) == 0 then return 0 end
if attempt ~= '' and redis.call('HDEL', tries, attempt) == 0 then return 0 end
redis.call('INCR', stock)
if tonumber(redis.call('HINCRBY', buyers, phone, -1)) <= 0 then
  redis.call('HDEL', buyers, phone)
end
return 1
"""

# The writer's last look at the queue: empty, so it lets go of its lock and of the wake
# flag in one step (an order queued after this wakes a new writer; one queued before it is
# still in the queue, and this writer goes on).
_FINISH = """
local queue, woken, writer = KEYS[1], KEYS[2], KEYS[3]
if redis.call('LLEN', queue) > 0 then return 0 end
redis.call('DEL', woken)
if redis.call('GET', writer) == ARGV[1] then redis.call('DEL', writer) end
return 1
"""


def _keys(sale_id: int) -> list[str]:
    tag = f"fs:{{{sale_id}}}"
    return [
        f"{tag}:ready",
        f"{tag}:stock",
        f"{tag}:buyers",
        f"{tag}:tries",
        f"{tag}:attempts",
        f"{tag}:queue",
        f"{tag}:woken",
        f"{tag}:writer",
        f"{tag}:refused",
    ]


def reserve(
    sale, phone: str, attempt: str, now_ms: int, code: str, order: str
) -> tuple[Outcome, str | None, bool]:
    """Decide an attempt and, if a seat is left for this family, take it and queue `order`
    (the JSON the writer needs) under `code`. Returns the outcome, the order's code (this
    one, or the earlier one of a repeated attempt) and whether a writer must be woken."""
    result = redis_connection.script(_RESERVE)(
        keys=_keys(sale.id)[:7],
        args=[
            now_ms,
            int(sale.starts_at.timestamp() * 1000),
            int(sale.ends_at.timestamp() * 1000),
            phone,
            attempt,
            sale.per_family_limit,
            KEEP_SECONDS,
            code,
            order,
            WAKE_SECONDS,
        ],
    )
    found = _text(result[1]) if len(result) > 1 else None
    return Outcome(int(result[0])), found, len(result) > 2 and bool(result[2])


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def give_back(sale_id: int, phone: str, attempt: str = "") -> bool:
    """Return a seat taken by `reserve` (the database refused the order, or the order
    expired). With `attempt`, only if that attempt still holds it, so a retry cannot give
    one seat back twice. Nothing to do if the counters are gone: they are rebuilt from
    the database, which already says the seat is free."""
    return bool(redis_connection.script(_GIVE_BACK)(keys=_keys(sale_id)[:4], args=[phone, attempt]))


def rebuild(sale, build: Callable[[], tuple[int, dict[str, int], list[tuple[str, str]]]]) -> bool:
    """Write the counters from what the database says (`build()`, called only by the
    process that takes the rebuild lock: the seats left, the seats held per phone,
    (attempt, order code) of the orders that hold a seat) and from the orders still
    queued (stock changed while some were: theirs are taken too), unless another process is
    doing it. Returns whether this process did."""
    client = redis_connection.client
    ready, stock, buyers, tries, _attempts, queue = _keys(sale.id)[:6]
    if not client.set(f"fs:{{{sale.id}}}:rebuilding", 1, nx=True, ex=REBUILD_LOCK_SECONDS):
        return False
    if client.exists(ready):  # built while this process waited for the lock: keep it
        client.delete(f"fs:{{{sale.id}}}:rebuilding")
        return True
    seats_left, held, attempts = build()
    held, attempts = dict(held), list(attempts)
    for queued in map(QueuedOrder.loads, client.lrange(queue, 0, -1)):
        # (one the writer has just committed is counted twice until the next rebuild:
        # a seat too few on offer for a moment, never one too many)
        seats_left -= 1
        held[queued.phone] = held.get(queued.phone, 0) + 1
        attempts.append((queued.attempt_key, queued.code))
    pipe = client.pipeline(transaction=True)
    pipe.delete(stock, buyers, tries)
    pipe.set(stock, max(seats_left, 0), ex=KEEP_SECONDS)
    if held:
        pipe.hset(buyers, mapping=held)
        pipe.expire(buyers, KEEP_SECONDS)
    if attempts:
        pipe.hset(tries, mapping=dict(attempts))
        pipe.expire(tries, KEEP_SECONDS)
    pipe.set(ready, 1, ex=KEEP_SECONDS)
    pipe.delete(f"fs:{{{sale.id}}}:rebuilding")
    pipe.execute()
    return True


def ensure_ready(sale, build: Callable[[], tuple], tries: int = 500) -> None:
    """Make sure the sale's counters exist: build them (`build` reads the database) or
    wait for the process that does."""
    client = redis_connection.client
    for _ in range(tries):
        if client.exists(_keys(sale.id)[0]):
            return
        if rebuild(sale, build):
            return
        time.sleep(0.005)  # another process is building them (milliseconds)
    raise TimeoutError(f"flash sale {sale.id}: its counters were not rebuilt")


def forget(sale_id: int) -> None:
    """Drop the counters (stock changed: they are rebuilt from the database). The queue
    stays: its orders are still to be written."""
    redis_connection.client.delete(*_keys(sale_id)[:4])


# --- the queue of orders to write ------------------------------------------------------------


@dataclass(frozen=True)
class QueuedOrder:
    """An order a winning attempt queued: all the writer needs, as JSON in Redis."""

    code: str
    attempt_key: str
    phone: str
    reserved_at: str  # ISO 8601, UTC
    details: dict
    touch: dict

    def dumps(self) -> str:
        # vars(), not asdict(): its fields are flat, and this is every winning tap's
        return json.dumps(vars(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: bytes | str) -> QueuedOrder:
        return cls(**json.loads(raw))


def queue_length(sale_id: int) -> int:
    return int(redis_connection.client.llen(_keys(sale_id)[5]))


@contextmanager
def writing(sale_id: int) -> Iterator[str | None]:
    """The sale's writer lock for a `with` block: its token, or None if another writer
    holds it (that one finishes the queue: `finish` keeps it going while orders are
    queued). Let go of at the end, however the block ends."""
    client = redis_connection.client
    token = os.urandom(8).hex()
    writer = _keys(sale_id)[7]
    if not client.set(writer, token, nx=True, ex=WRITER_LOCK_SECONDS):
        yield None
        return
    try:
        yield token
    finally:
        if client.get(writer) == token.encode():
            client.delete(writer)


def being_written(sale_id: int) -> bool:
    """A writer holds the sale's lock (renewed with each batch it takes)."""
    return bool(redis_connection.client.exists(_keys(sale_id)[7]))


def queued(sale_id: int, most: int) -> list[QueuedOrder]:
    """The oldest `most` queued orders, left in the queue until `written` (a writer that
    dies leaves them to the next); the writer's lock is renewed."""
    client = redis_connection.client
    pipe = client.pipeline(transaction=False)
    pipe.lrange(_keys(sale_id)[5], 0, most - 1)
    pipe.expire(_keys(sale_id)[7], WRITER_LOCK_SECONDS)
    raw, _renewed = pipe.execute()
    return [QueuedOrder.loads(item) for item in raw]


def written(sale_id: int, count: int) -> None:
    """The oldest `count` queued orders are in the database (committed): off the queue."""
    redis_connection.client.ltrim(_keys(sale_id)[5], count, -1)


def finish(sale_id: int, token: str) -> bool:
    """The queue is empty: the writer may stop (True), or orders came meanwhile (False)."""
    queue, woken, writer = _keys(sale_id)[5:8]
    return bool(redis_connection.script(_FINISH)(keys=[queue, woken, writer], args=[token]))


def refuse(sale_id: int, code: str, reason: str) -> None:
    """Keep why the database refused a queued order, for its family's page."""
    refused = _keys(sale_id)[8]
    pipe = redis_connection.client.pipeline(transaction=False)
    pipe.hset(refused, code, reason)
    pipe.expire(refused, KEEP_SECONDS)
    pipe.execute()


def refusals(sale_id: int, codes: list[str]) -> dict[str, str]:
    """Why the database refused these queued orders, for those it did."""
    if not codes:
        return {}
    found = redis_connection.client.hmget(_keys(sale_id)[8], codes)
    return {code: _text(reason) for code, reason in zip(codes, found, strict=True) if reason}


def seats_left(sale_id: int) -> int | None:
    """Seats left by Redis's count, or None if it has none."""
    value = redis_connection.client.get(_keys(sale_id)[1])
    return None if value is None else max(int(value), 0)


def attempts_key(sale_id: int) -> str:
    """The key that counts attempts: the script's, and the web processes' for the attempts
    they refuse from memory (app.pagecache.remember_refusal, added to it every
    app.pagecache.COUNTS_ADDED_EVERY). The writer job waits while it grows."""
    return _keys(sale_id)[4]


def attempts(sale_id: int) -> int:
    return int(redis_connection.client.get(attempts_key(sale_id)) or 0)
