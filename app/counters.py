"""Counters that public pages bump without touching the database.

A shared link is opened by hundreds of phones in a minute; a view counter kept as an
UPDATE of the page's row would make every view a write transaction queued behind that
row's lock. Instead a view is an HINCRBY in Redis, and a job writes the sums back: a
platform sweeper finds the institutions with counts waiting (`waiting`), and a job per
institution takes them (`take`) and adds them to its rows.

Counting is best effort: with Redis down a view is not counted and the page is served all
the same. Keys of one kind and institution live in one hash, `counts:<kind>:<institution>`,
fields `<object id>:<what>`.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict

import redis

from app.extensions import redis_connection

log = logging.getLogger(__name__)


def _key(kind: str, institution_id: int) -> str:
    return f"counts:{kind}:{institution_id}"


def _waiting_key(kind: str) -> str:
    return f"counts:{kind}:waiting"


def bump(kind: str, institution_id: int, object_id: int, *names: str) -> None:
    """Add one to each of `names` of an object (a page view, and its traffic source)."""
    try:
        pipe = redis_connection.client.pipeline(transaction=False)
        for name in names:
            pipe.hincrby(_key(kind, institution_id), f"{object_id}:{name}", 1)
        pipe.sadd(_waiting_key(kind), institution_id)
        pipe.execute()
    except redis.RedisError as error:
        log.warning("%s of %s/%s not counted: %s", kind, institution_id, object_id, error)


def waiting(kind: str) -> list[int]:
    """The institutions with counts of this kind not yet written back."""
    return sorted(int(member) for member in redis_connection.client.smembers(_waiting_key(kind)))


def take(kind: str, institution_id: int) -> dict[int, dict[str, int]]:
    """Take the institution's counts of this kind out of Redis: {object id: {name: n}}.
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
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for field, value in raw.items():
        object_id, _, name = field.decode().partition(":")
        counts[int(object_id)][name] = int(value)
    return dict(counts)


def give_back(kind: str, institution_id: int, counts: dict[int, dict[str, int]]) -> None:
    """Put taken counts back (their write-back failed), to be taken again later."""
    for object_id, names in counts.items():
        for name, value in names.items():
            redis_connection.client.hincrby(
                _key(kind, institution_id), f"{object_id}:{name}", value
            )
    redis_connection.client.sadd(_waiting_key(kind), institution_id)
