"""Public pages come from Redis (app.pagecache), and are never stale in a way that matters:
what changes what a parent sees shows on the next view, and one institution's page is
never served for another's."""

from __future__ import annotations

import re
from datetime import timedelta

import redis
import time_machine
from sqlalchemy import select, update

from app import pagecache, tenancy
from app.counters import sweep_counts
from app.courses.models import Course
from app.db import utcnow
from app.extensions import db, redis_connection
from app.institutions.models import Institution
from app.jobs import run_burst
from app.leads.models import FormSourceStat
from app.pagecache import in_memory
from app.tenancy import bound
from tests.factories import make_course, make_form, make_group_buy, make_institution
from tests.helpers import (
    flask_dispatches,
    join_team,
    login,
    only_team,
    open_team,
    register,
    statements,
    wait_until,
)


def page(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


def test_a_warm_public_page_is_served_without_the_database(client, institution):
    group_buy = make_group_buy(institution)
    course = make_course(institution)
    form = make_form(institution)
    paths = [
        f"/{institution.slug}/gb/{group_buy.code}",
        f"/{institution.slug}/c/{course.code}",
        f"/{institution.slug}/f/{form.code}",
    ]
    for path in paths:
        page(client, path)  # renders and keeps it

    with statements() as sent:
        warm = [page(client, path) for path in paths]

    assert sent == [], "\n".join(sent)
    assert "Summer maths group buy" in warm[0] and "Maths Olympiad trial" in warm[1]


def test_a_first_visit_is_answered_in_front_of_flask_with_the_pages_own_headers(
    app, institution, monkeypatch
):
    """A parent opening the link (no session cookie) gets the kept page without a Flask
    request being dispatched, with the same security headers as the rendered page; a
    visitor with a session gets it from inside Flask."""
    form = make_form(institution)
    path = f"/{institution.slug}/f/{form.code}?utm_source=poster"
    rendered = app.test_client().get(path)
    dispatched = flask_dispatches(app, monkeypatch)

    kept = app.test_client().get(path)
    dispatched_for_the_first_visit = len(dispatched)
    with_session = app.test_client()
    with_session.get("/lang/en")
    dispatched.clear()
    kept_inside = with_session.get(path)

    assert (rendered.status_code, kept.status_code, kept_inside.status_code) == (200, 200, 200)
    assert (dispatched_for_the_first_visit, len(dispatched)) == (0, 1)
    for name in ("Content-Type", "Content-Security-Policy", "X-Frame-Options", "Referrer-Policy"):
        assert kept.headers[name] == rendered.headers[name] == kept_inside.headers[name], name
    assert _same_but_clock(kept.get_data(as_text=True), rendered.get_data(as_text=True))


def _same_but_clock(one: str, other: str) -> bool:
    clock = re.compile(r'data-server-now="[^"]+"')
    return clock.sub("", one) == clock.sub("", other)


def test_a_copy_in_a_processs_memory_is_dropped_when_another_process_changes_the_page(
    app, institution, monkeypatch
):
    """Each web process serves a page it fetched from its own memory (no Redis round trip),
    and drops it as soon as another process publishes a change of what it shows."""
    course = make_course(institution)
    path = f"/{institution.slug}/c/{course.code}"
    stranger = app.test_client()
    assert wait_until(lambda: in_memory.started(app).listening)
    monkeypatch.setattr(in_memory, "_seconds", 600)  # only the notice can drop the copy
    with time_machine.travel(utcnow(), tick=False):
        page(stranger, path)  # rendered and kept in Redis
        page(stranger, path)  # fetched from Redis and copied to memory
        fetches = redis_calls("evalsha")
        assert "Maths Olympiad trial" in page(stranger, path)
        assert redis_calls("evalsha") == fetches  # from memory

        # Another process renames the course and publishes the change (its changed()).
        db.session.execute(
            update(Course).where(Course.id == course.id).values(title="Renamed trial")
        )
        db.session.commit()
        another_process = redis.Redis.from_url(app.config["REDIS_URL"])
        version = pagecache._version_key(institution.id, "course", course.code)
        another_process.incr(version)
        another_process.publish(pagecache.CHANGES, version)

        assert wait_until(lambda: "Renamed trial" in page(stranger, path))


def test_the_institution_of_a_public_request_is_kept_in_memory_until_it_changes(
    app, institution, monkeypatch
):
    """A public request that Flask handles (a form sent with a mistake, here) finds its
    institution in the process's memory, not in Redis or the database, and a change of the
    institution that another process publishes shows on the next one."""
    form = make_form(institution)
    path = f"/{institution.slug}/f/{form.code}"
    parent = app.test_client()
    assert wait_until(lambda: in_memory.started(app).listening)
    monkeypatch.setattr(in_memory, "_seconds", 600)  # only the notice can drop the copy

    def sent_with_a_mistake() -> str:
        response = parent.post(path, data={"parent_name": ""})
        assert response.status_code == 422
        return response.get_data(as_text=True)

    with time_machine.travel(utcnow(), tick=False):
        sent_with_a_mistake()  # the institution read from the database, kept in Redis
        sent_with_a_mistake()  # read from Redis, kept in memory
        name, slug = institution.name, institution.slug
        redis_connection.client.delete(tenancy._copy_key(slug))
        with statements() as sent:
            assert name in sent_with_a_mistake()
        assert [s for s in sent if "institutions.slug =" in s] == []  # from memory

        # Another process renames the institution and publishes the change.
        db.session.execute(
            update(Institution).where(Institution.id == institution.id).values(name="Renamed")
        )
        db.session.commit()
        another_process = redis.Redis.from_url(app.config["REDIS_URL"])
        another_process.delete(tenancy._copy_key(institution.slug))
        version = pagecache._version_key(institution.id, pagecache.INSTITUTION, "")
        another_process.incr(version)
        another_process.publish(pagecache.CHANGES, version)

        assert wait_until(lambda: in_memory.institution_copy(slug) is None)  # heard
        assert "Renamed" in sent_with_a_mistake()


def test_a_copy_of_the_institution_read_before_a_change_is_not_kept_after_it(
    app, institution, monkeypatch
):
    """A request that read the institution's row just before a change committed (and
    deleted the copy in Redis) does not put its old copy back there: the next requests
    read the row again until one reads it after the change."""
    monkeypatch.setattr(tenancy, "_copies_in_memory", None)  # Redis and the database only
    form = make_form(institution)
    path = f"/{institution.slug}/f/{form.code}"
    slug = institution.slug
    read_row = tenancy.institution_by_slug

    def read_just_before_a_change(slug: str):
        row = read_row(slug)
        tenancy._forget_copy(slug)  # what a change of it does once committed, elsewhere
        return row

    def sent_with_a_mistake() -> None:
        assert app.test_client().post(path, data={"parent_name": ""}).status_code == 422

    redis_connection.client.delete(tenancy._copy_key(slug))
    monkeypatch.setattr(tenancy, "institution_by_slug", read_just_before_a_change)
    sent_with_a_mistake()
    assert tenancy._copy_in_redis(slug) is None

    monkeypatch.setattr(tenancy, "institution_by_slug", read_row)
    sent_with_a_mistake()  # read after the change: kept
    assert tenancy._copy_in_redis(slug)["name"] == institution.name


def test_nothing_read_before_the_listener_subscribed_is_kept_in_memory():
    """A version read while a process was not listening for changes (starting, or after
    losing its connection) may have missed a notice: it is not kept once the process
    listens again, while one read after is; and what was kept before a dropped connection
    (which redis-py subscribes again by itself) is forgotten when it is back."""
    memory = pagecache.PagesInMemory()
    memory._seconds = 600
    now = utcnow().timestamp()
    before = memory.generation  # read while not listening
    memory._subscribed()
    memory.remember_version("a version key", 1, now, before)
    assert memory.version("a version key", now) is None

    memory.remember_version("a version key", 2, now, memory.generation)
    assert memory.version("a version key", now) == 2
    memory._subscribed()  # again, after a dropped connection
    assert memory.version("a version key", now) is None


def redis_calls(command: str) -> int:
    stats = redis_connection.client.info("commandstats").get(f"cmdstat_{command}", {})
    return stats.get("calls", 0)


def test_every_view_is_counted_once_whether_rendered_or_kept(client, institution):
    """Counted in Redis (in the kept page's own fetch when it is served from there), written
    back by the periodic job: one view each, with its traffic source."""
    course = make_course(institution)
    form = make_form(institution)
    for _ in range(3):
        page(client, f"/{institution.slug}/c/{course.code}")
        page(client, f"/{institution.slug}/f/{form.code}?utm_source=poster")
    page(client, f"/{institution.slug}/f/{form.code}")
    in_memory.add_counts()  # what each web process does every COUNTS_ADDED_EVERY

    assert sweep_counts() == 2  # two kinds with counts waiting: courses' and forms'
    run_burst()
    db.session.refresh(course)
    db.session.refresh(form)
    assert (course.view_count, form.view_count) == (3, 4)
    sources = dict(db.session.execute(select(FormSourceStat.source, FormSourceStat.views)).all())
    assert sources == {"poster": 3, "direct": 1}


def test_a_kept_page_holds_nothing_of_one_visitor_for_another(app, institution):
    """No CSRF token (each form asks for its own), the server's clock and the link back
    from the language switcher of this visitor's own URL, no session cookie."""
    group_buy = make_group_buy(institution)
    path = f"/{institution.slug}/gb/{group_buy.code}"
    first, second = app.test_client(), app.test_client()

    responses = [first.get(path + "?ref=AAA"), second.get(path + "?ref=BBB")]
    pages = [response.get_data(as_text=True) for response in responses]
    assert [r.status_code for r in responses] == [200, 200]
    assert not any("Set-Cookie" in r.headers for r in responses)
    tokens = [first.get("/csrf").get_json()["token"], second.get("/csrf").get_json()["token"]]

    for html, ref in zip(pages, ("AAA", "BBB"), strict=True):
        assert "\x1f" not in html
        assert re.search(r'name="csrf_token" type="hidden" value=""', html)
        now = re.search(r'data-server-now="([^"]+)"', html).group(1)
        assert now.startswith(utcnow().date().isoformat())
        assert f"ref%3D{ref}" in html  # ?next= of the language links
    assert tokens[0] != tokens[1]


def test_a_page_sent_back_with_errors_carries_its_token(app, institution):
    form = make_form(institution)
    path = f"/{institution.slug}/f/{form.code}"
    page(app.test_client(), path)

    sent_back = app.test_client().post(path, data={"parent_name": "Li Na"})

    assert sent_back.status_code == 422
    assert re.search(r'name="csrf_token" type="hidden" value="[^"]+"', sent_back.get_data(True))


def test_a_team_that_fills_shows_full_on_the_next_view(app, client, institution):
    group_buy = make_group_buy(institution, team_size=2)
    open_team(client, institution, group_buy, 1)
    team = only_team(group_buy)
    stranger = app.test_client()
    team_path = f"/{institution.slug}/gb/{group_buy.code}/t/{team.code}"
    campaign_path = f"/{institution.slug}/gb/{group_buy.code}"
    assert "1 more family needed" in page(stranger, team_path)
    assert f"/t/{team.code}" in page(stranger, campaign_path)  # a team to join

    assert join_team(app.test_client(), institution, group_buy, team, 2).status_code == 302

    assert "The team is full!" in page(stranger, team_path)
    assert f"/t/{team.code}" not in page(stranger, campaign_path)


def test_a_team_whose_time_runs_out_is_shown_as_failed_without_any_change(app, client, institution):
    group_buy = make_group_buy(institution, team_size=2, team_hours=2)
    open_team(client, institution, group_buy, 1)
    team = only_team(group_buy)
    stranger = app.test_client()
    path = f"/{institution.slug}/gb/{group_buy.code}/t/{team.code}"
    assert "1 more family needed" in page(stranger, path)

    # Nothing ran (no sweeper): the copy is not served past the team's deadline.
    with time_machine.travel(team.expires_at + timedelta(seconds=1)):
        html = page(stranger, path)

    assert "did not fill in time" in html


def test_a_lesson_that_becomes_full_shows_on_the_next_view(app, institution):
    course = make_course(institution, capacity=1)
    stranger = app.test_client()
    path = f"/{institution.slug}/c/{course.code}"
    assert "Full" not in page(stranger, path)

    assert register(app.test_client(), institution, course).status_code == 302

    assert "Full: you will join the waitlist" in page(stranger, path)


def test_a_campaign_that_ends_shows_on_the_next_view(app, client, institution, owner):
    group_buy = make_group_buy(institution)
    later = make_group_buy(institution, ends_at=utcnow() + timedelta(hours=3))
    stranger = app.test_client()
    paths = [f"/{institution.slug}/gb/{g.code}" for g in (group_buy, later)]
    assert all("Open a team and hold" in page(stranger, path) for path in paths)

    login(client, owner)
    client.post(f"/staff/{institution.slug}/campaigns/{group_buy.id}/end")
    ended_by_staff = page(stranger, paths[0])
    with time_machine.travel(later.ends_at + timedelta(seconds=1)):
        ended_by_the_clock = page(stranger, paths[1])

    for html in (ended_by_staff, ended_by_the_clock):
        assert "Open a team and hold" not in html and "This group buy has ended." in html


def test_a_price_edited_in_a_draft_and_a_title_edited_live_show_on_the_next_view(
    app, client, institution, owner
):
    group_buy = make_group_buy(institution)
    stranger = app.test_client()
    path = f"/{institution.slug}/gb/{group_buy.code}"
    assert "¥199.00" in page(stranger, path)
    login(client, owner)
    edit = f"/staff/{institution.slug}/campaigns/{group_buy.id}/edit"
    form = {
        "title": "Winter maths group buy",
        "description": "Eight lessons at the group price.",
        "course_id": group_buy.course_id,
        "list_price": "499",
        "group_price": "199",
        "team_size": "3",
        "team_hours": "24",
        "starts_at": "2026-12-01T10:00",
        "ends_at": "2026-12-20T10:00",
        "per_contact_limit": "1",
    }

    assert client.post(edit, data=form).status_code == 302
    assert "Winter maths group buy" in page(stranger, path)

    draft = make_group_buy(institution)
    with bound(institution):
        draft.status = "draft"
        db.session.commit()
    draft_path = f"/{institution.slug}/gb/{draft.code}"
    assert stranger.get(draft_path).status_code == 404
    draft_edit = f"/staff/{institution.slug}/campaigns/{draft.id}/edit"
    assert client.post(draft_edit, data={**form, "group_price": "99"}).status_code == 302
    client.post(f"/staff/{institution.slug}/campaigns/{draft.id}/publish")

    assert "¥99.00" in page(stranger, draft_path)


def test_a_form_that_reaches_its_cap_shows_closed_on_the_next_view(app, institution):
    form = make_form(institution, submission_cap=1)
    stranger = app.test_client()
    path = f"/{institution.slug}/f/{form.code}"
    assert 'name="phone"' in page(stranger, path)

    sent = app.test_client().post(
        path,
        data={"parent_name": "Li Na", "phone": "13900139000", "subject": "Maths", "consent": "y"},
    )

    assert sent.status_code == 302, sent.get_data(as_text=True)
    closed = stranger.get(path)
    assert closed.status_code == 410
    html = closed.get_data(as_text=True)
    assert "this form has reached its limit" in html and 'name="phone"' not in html


def test_another_institutions_page_with_the_same_code_is_never_served(app, institution):
    group_buy = make_group_buy(institution)
    other = make_institution()
    db.session.commit()
    theirs = make_group_buy(other, title="Another school: art camp")
    with bound(other):
        theirs.code = group_buy.code
        db.session.commit()
    stranger = app.test_client()

    ours = page(stranger, f"/{institution.slug}/gb/{group_buy.code}")
    their_page = page(stranger, f"/{other.slug}/gb/{group_buy.code}")

    assert "Summer maths group buy" in ours and "Another school" not in ours
    assert "Another school: art camp" in their_page and "Summer maths" not in their_page


def test_the_institutions_new_name_and_language_show_on_every_page(app, owner_client, institution):
    course = make_course(institution)
    stranger = app.test_client()
    path = f"/{institution.slug}/c/{course.code}"
    assert institution.name in page(stranger, path)

    settings = {
        "name": "Renamed School",
        "country": "CN",
        "timezone": "Asia/Shanghai",
        "currency": "CNY",
        "locale": "zh_CN",
    }
    assert (
        owner_client.post(f"/staff/{institution.slug}/settings", data=settings).status_code == 302
    )

    html = page(stranger, path)
    assert "Renamed School" in html and "报名" in html


def test_a_visitor_who_chose_a_language_gets_it_and_the_next_one_the_default(app, institution):
    course = make_course(institution)
    path = f"/{institution.slug}/c/{course.code}"
    chinese = app.test_client()
    chinese.get("/lang/zh_CN")

    assert "报名" in page(chinese, path)
    assert "Register" in page(app.test_client(), path)
    assert "报名" in page(chinese, path)  # now both are kept


def test_a_change_marked_again_after_a_rollback_is_published(institution):
    key = f"page:{institution.id}:course:abc:v"
    before = int(redis_connection.client.get(key) or 0)
    with bound(institution):
        pagecache.changed(institution.id, "course", "abc")
        db.session.rollback()  # its bump goes with it
        pagecache.changed(institution.id, "course", "abc")
        db.session.commit()

    assert int(redis_connection.client.get(key) or 0) == before + 1


def test_a_savepoint_rolled_back_keeps_the_changes_marked_before_it(institution):
    from app.db import savepoint

    key = f"page:{institution.id}:course:def:v"
    before = int(redis_connection.client.get(key) or 0)
    with bound(institution):
        pagecache.changed(institution.id, "course", "def")
        try:
            with savepoint(db.session()):
                pagecache.changed(institution.id, "course", "ghi")
                raise RuntimeError("refused")
        except RuntimeError:
            pass
        db.session.commit()
        pagecache.changed(institution.id, "course", "def")  # a later transaction's change
        db.session.commit()

    assert int(redis_connection.client.get(key) or 0) == before + 2
    assert redis_connection.client.get(f"page:{institution.id}:course:ghi:v") is None
