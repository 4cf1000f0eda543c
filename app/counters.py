"""Counters that public pages bump without touching the database.

A shared link is opened by hundreds of phones in a minute; a view counter kept as an
UPDATE of the page's row would make every view a write transaction queued behind that
row's lock. Instead a view is an HINCRBY in Redis, and a job writes the sums back: a
platform sweeper finds the institutions with counts waiting (`waiting`), and a job per
institution takes them (`take`) and hands them to the domain's function registered for
their kind (`@writes_back(kind)`), which adds them to its rows.

Counting is best effort: with Redis down a view is not counted and the page is served all
the same. Keys of one kind and institution live in one hash, `counts:<kind>:<institution>`,
fields `<object id>:<what>`.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import redis
from sqlalchemy import update

from app.extensions import db, redis_connection
from app.jobs import job, periodic, platform_job, redrive

log = logging.getLogger(__name__)


def _key(kind: str, institution_id: int) -> str:
    return f"counts:{kind}:{institution_id}"


def _waiting_key(kind: str) -> str:
    return f"counts:{kind}:waiting"


WRITERS: dict[str, Callable] = {}  # kind -> fn(institution, {ref: {name: n}})


def writes_back(kind: str):
    """Register the service that adds counts of `kind` to the institution's rows."""

    def decorator(fn: Callable) -> Callable:
        WRITERS[kind] = fn
        return fn

    return decorator


@dataclass(frozen=True)
class Count:
    """What one event adds to: one to each of `names` (a page view's "total", its traffic
    source) of an object of `kind`."""

    kind: str
    object_id: str
    names: tuple[str, ...]

    def as_script_args(self) -> list[str]:
        """The arguments of BUMP_LUA's bump() after the institution."""
        return [self.kind, self.object_id, *self.names]


def bump(institution_id: int, count: Count) -> None:
    """Add the count to the institution's counts (best effort: see the module's notes)."""
    try:
        add({(institution_id, count.kind): {f"{count.object_id}:{n}": 1 for n in count.names}})
    except redis.RedisError as error:
        log.warning(
            "%s of %s/%s not counted: %s", count.kind, institution_id, count.object_id, error
        )


def add(counts: dict[tuple[int, str], dict[str, int]]) -> None:
    """Add counts gathered elsewhere ({(institution id, kind): {"<object id>:<name>": n}})
    in one round trip. Raises redis.RedisError: the caller keeps them or drops them."""
    pipe = redis_connection.client.pipeline(transaction=False)
    for (institution_id, kind), fields in counts.items():
        for field, value in fields.items():
            pipe.hincrby(_key(kind, institution_id), field, value)
        pipe.sadd(_waiting_key(kind), institution_id)
    pipe.execute()


# bump() as Lua, for a script that learns the institution itself: app.pagecache counts a
# kept page's view in the same round trip that fetches the page. ARGV from `first`:
# Count.as_script_args(). Keys as _key() and _waiting_key() make them.
BUMP_LUA = """
local function bump(institution, first)
  local kind, object_id = ARGV[first], ARGV[first + 1]
  local key = 'counts:' .. kind .. ':' .. institution
  for i = first + 2, #ARGV do
    redis.call('HINCRBY', key, object_id .. ':' .. ARGV[i], 1)
  end
  redis.call('SADD', 'counts:' .. kind .. ':waiting', institution)
end
"""


def waiting(kind: str) -> list[int]:
    """The institutions with counts of this kind not yet written back."""
    return sorted(int(member) for member in redis_connection.client.smembers(_waiting_key(kind)))


def take(kind: str, institution_id: int) -> dict[str, dict[str, int]]:
    """Take the institution's counts of this kind out of Redis: {object ref: {name: n}}.
    Counts bumped while they are taken start a new hash, so none is lost or taken twice."""
    client = redis_connection.client
    client.srem(_waiting_key(kind), institution_id)  # first: a bump after this marks it again
    taking = f"{_key(kind, institution_id)}:taking:{uuid.uuid4().hex}"
    try:
        client.rename(_key(kind, institution_id), taking)
    except redis.ResponseError:  # no such key: nothing to take
        return {}
    raw = client.hgetall(taking)
    client.delete(taking)
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for field, value in raw.items():
        ref, _, name = field.decode().partition(":")
        counts[ref][name] = int(value)
    return dict(counts)


def give_back(kind: str, institution_id: int, counts: dict[str, dict[str, int]]) -> None:
    """Put taken counts back (their write-back failed), to be taken again later."""
    fields = {
        f"{object_id}:{name}": value
        for object_id, names in counts.items()
        for name, value in names.items()
    }
    add({(institution_id, kind): fields})


# --- writing back --------------------------------------------------------------------------


def add_view_totals(institution, model, counts: dict[str, dict[str, int]]) -> None:
    """Add each object's counted "total" to the `view_count` of its row of `model`, found
    by its code: the whole write-back of a kind that counts page views only."""
    for code, names in sorted(counts.items()):
        db.session.execute(
            update(model)
            .where(model.institution_id == institution.id, model.code == code)
            .values(view_count=model.view_count + names.get("total", 0))
            .execution_options(synchronize_session=False)
        )
    db.session.flush()


@job(queue="default", timeout=120)
def write_back(institution, kind: str) -> int:
    """Add the institution's counts of `kind` kept in Redis to its rows; returns how many
    objects had some. If the write fails, the counts go back to Redis for the next run."""
    counts = take(kind, institution.id)
    try:
        WRITERS[kind](institution, counts)
    except Exception:
        give_back(kind, institution.id, counts)
        raise
    return len(counts)


@periodic("COUNTER_INTERVAL_SECONDS")
@platform_job(queue="default", timeout=120)
def sweep_counts() -> int:
    """Enqueue the write-back of every kind of count for every institution with some."""
    return sum(
        redrive(write_back, institution_id, kind, job_id=f"counts-{kind}-{institution_id}")
        for kind in WRITERS
        for institution_id in waiting(kind)
    )
