"""A flash sale's seats in Redis: the first, fast answer to a purchase attempt.

One Lua script decides an attempt in one step (the sale's window, a seat left, the
family's limit, an attempt not seen before) and takes the seat; the database then writes
the order behind a conditional UPDATE, and a seat the database refuses is given back here
(`give_back`). So Redis turns away the crowd cheaply, and PostgreSQL keeps the truth.

Every key of a sale shares the hash tag `{<sale id>}` (one Redis Cluster slot):

  fs:{7}:ready     present once the counters below were built from the database
  fs:{7}:stock     seats left
  fs:{7}:buyers    hash: family's phone -> seats it holds (pending or paid)
  fs:{7}:tries     hash: attempt key -> family's phone (a retried tap is the same attempt)
  fs:{7}:attempts  attempts counted (figures only)

If Redis lost them (a restart, a FLUSHALL), no attempt is decided until they are built
again from the database (`rebuild`), under a short lock so one process does it.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from app.extensions import redis_connection

KEEP_SECONDS = 14 * 24 * 3600  # a sale's keys outlive it by this much
REBUILD_LOCK_SECONDS = 10


class Outcome(enum.IntEnum):
    RESERVED = 1
    SOLD_OUT = 0
    OVER_LIMIT = -1
    REPEATED = -2  # this attempt was already decided (it reserved a seat then)
    CLOSED = -3
    NOT_READY = -4  # the counters are gone: build them again first


_RESERVE = """
local ready, stock, buyers, tries, attempts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, starts, ends = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local phone, attempt, limit, keep = ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
if redis.call('EXISTS', ready) == 0 then return -4 end
redis.call('INCR', attempts)
redis.call('EXPIRE', attempts, keep)
if now < starts or now >= ends then return -3 end
if redis.call('HEXISTS', tries, attempt) == 1 then return -2 end
if tonumber(redis.call('HGET', buyers, phone) or '0') >= limit then return -1 end
if tonumber(redis.call('GET', stock) or '0') <= 0 then return 0 end
redis.call('DECR', stock)
redis.call('HINCRBY', buyers, phone, 1)
redis.call('HSET', tries, attempt, phone)
redis.call('EXPIRE', tries, keep)
return 1
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

_scripts: dict = {}


def _keys(sale_id: int) -> list[str]:
    tag = f"fs:{{{sale_id}}}"
    return [f"{tag}:ready", f"{tag}:stock", f"{tag}:buyers", f"{tag}:tries", f"{tag}:attempts"]


def _script(name: str, source: str):
    client = redis_connection.client
    script = _scripts.get((name, id(client)))
    if script is None:
        script = _scripts[(name, id(client))] = client.register_script(source)
    return script


def reserve(sale, phone: str, attempt: str, now_ms: int) -> Outcome:
    """Decide an attempt and, if a seat is left for this family, take it."""
    result = _script("reserve", _RESERVE)(
        keys=_keys(sale.id),
        args=[
            now_ms,
            int(sale.starts_at.timestamp() * 1000),
            int(sale.ends_at.timestamp() * 1000),
            phone,
            attempt,
            sale.per_family_limit,
            KEEP_SECONDS,
        ],
    )
    return Outcome(int(result))


def give_back(sale_id: int, phone: str, attempt: str = "") -> bool:
    """Return a seat taken by `reserve` (the database refused the order, or the order
    expired). With `attempt`, only if that attempt still holds it, so a retry cannot give
    one seat back twice. Nothing to do if the counters are gone: they are rebuilt from
    the database, which already says the seat is free."""
    return bool(_script("give_back", _GIVE_BACK)(keys=_keys(sale_id)[:4], args=[phone, attempt]))


def rebuild(sale, seats_left: int, held: dict[str, int], attempts: list[tuple[str, str]]) -> bool:
    """Write the counters from what the database says (`seats_left`, seats `held` per
    phone, the attempts of orders that hold a seat), unless another process is doing it.
    Returns whether this process did."""
    client = redis_connection.client
    ready, stock, buyers, tries, _attempts = _keys(sale.id)
    if not client.set(f"fs:{{{sale.id}}}:rebuilding", 1, nx=True, ex=REBUILD_LOCK_SECONDS):
        return False
    if client.exists(ready):  # built while this process waited for the lock: keep it
        client.delete(f"fs:{{{sale.id}}}:rebuilding")
        return True
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


def ensure_ready(sale, build: Callable[[], tuple], tries: int = 50) -> None:
    """Make sure the sale's counters exist: build them (`build` reads the database) or
    wait for the process that does."""
    client = redis_connection.client
    for _ in range(tries):
        if client.exists(_keys(sale.id)[0]):
            return
        if rebuild(sale, *build()):
            return
        time.sleep(0.05)  # another process is building them
    raise TimeoutError(f"flash sale {sale.id}: its counters were not rebuilt")


def forget(sale_id: int) -> None:
    """Drop the counters (stock changed: they are rebuilt from the database)."""
    redis_connection.client.delete(*_keys(sale_id)[:4])


def seats_left(sale_id: int) -> int | None:
    """Seats left by Redis's count, or None if it has none."""
    value = redis_connection.client.get(_keys(sale_id)[1])
    return None if value is None else max(int(value), 0)


def attempts_key(sale_id: int) -> str:
    """The key that counts attempts: the script's, and the web processes' for the attempts
    they refuse from memory (app.pagecache.remember_refusal)."""
    return _keys(sale_id)[4]


def attempts(sale_id: int) -> int:
    return int(redis_connection.client.get(attempts_key(sale_id)) or 0)
