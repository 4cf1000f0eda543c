"""Check-in camps: the daily window, one check-in per child and day (also under parallel
requests), streaks and make-up cards, points, the evening nudge exactly once, the staff's
figures, and tenancy. Clocks are frozen in Asia/Shanghai."""

from __future__ import annotations

import io
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from PIL import Image
from sqlalchemy import func, select

from app.camps import queries, services
from app.camps.models import CheckIn
from app.camps.tasks import sweep_camps
from app.db import utcnow
from app.errors import ServiceError
from app.extensions import db, redis_connection
from app.groups import services as groups
from app.groups.models import Post, PostStatus
from app.jobs import run_burst
from app.loyalty import queries as loyalty_queries
from app.notifications.models import OutboxMessage
from app.portal.services import SESSION_KEY
from app.text import masked_name
from tests.factories import make_institution
from tests.groups.test_groups import make_family, make_group, sign_in
from tests.helpers import committed_data, committed_institution, login, run_in_parallel

SHANGHAI = ZoneInfo("Asia/Shanghai")


def first_day() -> date:
    """The camp starts tomorrow (in Shanghai), whatever the test's clock says."""
    return datetime.now(SHANGHAI).date() + timedelta(days=1)


def at(day: date, hour: int, minute: int = 0, offset: int = 0) -> datetime:
    return datetime.combine(day + timedelta(days=offset), time(hour, minute), tzinfo=SHANGHAI)


def make_camp(institution, group, days: int = 7, **values):
    start = first_day()
    return services.create_camp(
        institution,
        group,
        title="21天阅读打卡",
        description=None,
        starts_on=start,
        ends_on=start + timedelta(days=days - 1),
        weekdays=[],
        window_start=time(6, 0),
        window_end=time(22, 0),
        makeup_cards=values.pop("makeup_cards", 2),
        makeup_days=values.pop("makeup_days", 3),
        nudge_at=values.pop("nudge_at", time(20, 0)),
        **values,
    )


def member_family(institution, group, n: int, camp=None):
    """A family in the group (and, with `camp`, its child entered in the camp)."""
    contact = make_family(institution, n)
    groups.add_member(institution, group, contact)
    if camp is not None:
        services.join_camp(institution, camp, contact, contact.students)
    return contact, contact.students[0]


@pytest.fixture
def camp_setup(tenant):
    group, _ = make_group(tenant)
    camp = make_camp(tenant, group)
    contact, child = member_family(tenant, group, 1)
    db.session.commit()
    return camp, contact, child


def check_in(tenant, camp, contact, child, when: datetime, day: date | None = None):
    with time_machine.travel(when, tick=False):
        checkin, _post = services.check_in(tenant, camp, contact, child, "读完了第一章", day=day)
        db.session.flush()
        return checkin


# --- the window ----------------------------------------------------------------------------------


def test_check_ins_are_taken_inside_the_window_only(tenant, camp_setup):
    camp, contact, child = camp_setup
    day = camp.starts_on

    for when in (at(day, 5, 59), at(day, 22, 0), at(day, 22, 1, offset=1)):
        with pytest.raises(ServiceError) as refused:
            check_in(tenant, camp, contact, child, when)
        assert refused.value.code == "outside_window"
        assert "06:00" in str(refused.value.message) and "22:00" in str(refused.value.message)
    assert check_in(tenant, camp, contact, child, at(day, 6, 0)).day == day
    assert check_in(tenant, camp, contact, child, at(day, 21, 59, offset=1)).day == day + timedelta(
        days=1
    )
    assert db.session.scalar(select(func.count()).select_from(CheckIn)) == 2


def test_no_check_in_before_the_camp_starts_after_it_ends_or_on_a_day_it_rests(tenant):
    group, _ = make_group(tenant)
    start = first_day()
    camp = make_camp(tenant, group, days=7)
    camp.weekdays = [d for d in range(7) if d != (start + timedelta(days=1)).weekday()]
    contact, child = member_family(tenant, group, 2)

    for when in (at(start, 12, offset=-1), at(start, 12, offset=1), at(start, 12, offset=7)):
        with pytest.raises(ServiceError) as refused:
            check_in(tenant, camp, contact, child, when)
        assert refused.value.code == "no_day"


def test_a_second_check_in_for_the_same_child_and_day_is_refused(tenant, camp_setup):
    camp, contact, child = camp_setup
    check_in(tenant, camp, contact, child, at(camp.starts_on, 8))

    with pytest.raises(ServiceError) as refused:
        check_in(tenant, camp, contact, child, at(camp.starts_on, 9))
    assert refused.value.code == "already_checked_in"


def test_only_members_check_in_and_only_for_their_own_children(tenant, camp_setup):
    camp, contact, child = camp_setup
    outsider = make_family(tenant, 9)
    other_child = outsider.students[0]

    with pytest.raises(ServiceError) as not_member:
        check_in(tenant, camp, outsider, other_child, at(camp.starts_on, 8))
    with pytest.raises(ServiceError) as not_theirs:
        check_in(tenant, camp, contact, other_child, at(camp.starts_on, 8))
    assert (not_member.value.code, not_theirs.value.code) == ("not_member", "student")


def test_a_check_in_is_a_post_in_the_group_feed_through_its_moderation(tenant, camp_setup):
    camp, contact, child = camp_setup
    checkin = check_in(tenant, camp, contact, child, at(camp.starts_on, 8))
    post = db.session.get(Post, checkin.post_id)
    assert post.status == PostStatus.PUBLISHED and masked_name(child.name) in post.body
    assert child.name not in post.body  # the whole group reads the feed
    assert "读完了第一章" in post.body

    camp.group.keywords = ["代购"]  # blocked by default: a listed keyword
    with time_machine.travel(at(camp.starts_on, 9, offset=1), tick=False):
        held_checkin, held = services.check_in(tenant, camp, contact, child, "加我VX: abc_123")
    assert held.status == PostStatus.HELD and held_checkin is not None  # held; the day counts

    _, second = member_family(tenant, camp.group, 8)
    with time_machine.travel(at(camp.starts_on, 9, offset=1), tick=False):
        blocked_checkin, blocked = services.check_in(
            tenant, camp, second.contact, second, "代购奶粉，私聊"
        )
    assert blocked_checkin is None and blocked.status == PostStatus.BLOCKED
    assert queries.checked_days(camp).get(second.id) is None


# --- streaks and make-up cards -------------------------------------------------------------------


def test_a_missed_day_breaks_the_streak_and_a_make_up_card_restores_it(tenant):
    group, _ = make_group(tenant)
    camp = make_camp(tenant, group, days=10, makeup_cards=1, makeup_days=3)
    contact, child = member_family(tenant, group, 3)
    start = camp.starts_on
    for offset in (0, 1, 3):  # day 3 (offset 2) missed
        check_in(tenant, camp, contact, child, at(start, 8, offset=offset))
    today = start + timedelta(days=3)
    days = queries.checked_days(camp)[child.id]
    assert queries.streak(camp, days, today) == queries.Streak(current=1, longest=2, total=3)
    assert queries.missed_days(camp, days, today) == [start + timedelta(days=2)]

    check_in(tenant, camp, contact, child, at(start, 9, offset=3), day=start + timedelta(days=2))

    days = queries.checked_days(camp)[child.id]
    assert queries.streak(camp, days, today) == queries.Streak(current=4, longest=4, total=4)
    # The second make-up (the camp gives one card) is refused, and changes nothing.
    check_in(tenant, camp, contact, child, at(start, 8, offset=6))  # days 5 and 6 missed
    with pytest.raises(ServiceError) as refused:
        check_in(
            tenant, camp, contact, child, at(start, 9, offset=6), day=start + timedelta(days=5)
        )
    assert refused.value.code == "no_makeup_cards"


def test_a_make_up_card_reaches_back_only_so_many_days(tenant):
    group, _ = make_group(tenant)
    camp = make_camp(tenant, group, days=10, makeup_cards=5, makeup_days=2)
    contact, child = member_family(tenant, group, 4)

    with pytest.raises(ServiceError) as refused:
        check_in(tenant, camp, contact, child, at(camp.starts_on, 8, offset=5), day=camp.starts_on)
    assert refused.value.code == "makeup_too_late"


def test_check_ins_and_streak_milestones_earn_points_once(tenant):
    group, _ = make_group(tenant)
    camp = make_camp(tenant, group, days=8)
    contact, child = member_family(tenant, group, 5)
    for offset in range(7):
        check_in(tenant, camp, contact, child, at(camp.starts_on, 8, offset=offset))
    rules = loyalty_queries.points_rules(tenant)

    assert loyalty_queries.balance(contact) == 7 * rules.per_checkin + rules.streak_7


# --- the evening nudge ---------------------------------------------------------------------------


def test_thirty_children_twenty_checked_in_by_eight_get_exactly_ten_nudges(app, tenant):
    group, _ = make_group(tenant)
    camp = make_camp(tenant, group)
    families = [member_family(tenant, group, 100 + n, camp) for n in range(30)]
    member_family(tenant, group, 99)  # in the group, its child not in the camp: no nudge
    day = camp.starts_on
    for contact, child in families[:20]:
        check_in(tenant, camp, contact, child, at(day, 7))
    db.session.commit()

    def nudges() -> list[str]:
        return db.session.scalars(
            select(OutboxMessage.recipient).where(
                OutboxMessage.template == "camp_nudge", OutboxMessage.channel == "email"
            )
        ).all()

    with time_machine.travel(at(day, 19, 59), tick=False):
        sweep_camps()
        run_burst()
    assert nudges() == []  # not before the time staff chose

    with time_machine.travel(at(day, 20, 1), tick=False):
        sweep_camps()
        run_burst()
        first = sorted(nudges())
        redis_connection.client.flushall()
        sweep_camps()
        run_burst()
        second = sorted(nudges())

    expected = sorted(contact.email for contact, _ in families[20:])
    assert first == expected and second == expected
    with time_machine.travel(at(day, 20, 5, offset=7), tick=False):  # the camp has ended
        sweep_camps()
        run_burst()
    assert len(nudges()) == 10


# --- parallel check-ins --------------------------------------------------------------------------


@pytest.mark.committed
def test_ten_parallel_check_ins_for_one_child_and_day_leave_one_row(app):
    with committed_data() as made:
        institution = committed_institution(made)
        from app.tenancy import bound

        with bound(institution):
            group, _ = make_group(institution)
            camp = make_camp(institution, group)
            contact, child = member_family(institution, group, 7)
            db.session.commit()
            url = f"/{institution.slug}/camp/{camp.code}/check-in"
            child_id, camp_id, group_id = child.id, camp.id, group.id
            family = {str(institution.id): contact.id}
        db.session.remove()

        def post(n: int) -> int:
            client = app.test_client()
            with client.session_transaction() as session:
                session[SESSION_KEY] = family
            return client.post(
                url,
                data={"student": child_id, "body": f"第{n}次"},
                environ_base={"REMOTE_ADDR": f"10.40.0.{n}"},
            ).status_code

        with time_machine.travel(at(first_day(), 9), tick=True):
            results = run_in_parallel(10, post)

        assert sorted(results) == [302] + [422] * 9
        rows = db.session.scalar(
            select(func.count()).select_from(CheckIn).where(CheckIn.camp_id == camp_id)
        )
        posts = db.session.scalar(
            select(func.count()).select_from(Post).where(Post.group_id == group_id)
        )
        assert (rows, posts) == (1, 1)  # the losers' posts went with their transactions


# --- the family's page and the staff's -----------------------------------------------------------


def photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_a_family_checks_in_from_the_camp_page_and_sees_the_streak(app, tenant, camp_setup):
    camp, contact, child = camp_setup
    client = app.test_client()
    sign_in(client, contact)
    page = f"/{tenant.slug}/camp/{camp.code}"

    with time_machine.travel(at(camp.starts_on, 5, 30), tick=False):
        early = client.get(page).get_data(as_text=True)
        assert "Check-ins are open from 06:00 to 22:00" in early
    with time_machine.travel(at(camp.starts_on, 8), tick=False):
        response = client.post(
            f"{page}/check-in",
            data={
                "student": child.id,
                "body": "今天读了10页",
                "pictures": [(io.BytesIO(photo()), "p.jpg")],
            },
            content_type="multipart/form-data",
        )
        assert response.status_code == 302
        html = client.get(page).get_data(as_text=True)
    assert "Checked in today" in html and 'class="streak-current">1<' in html

    with time_machine.travel(at(camp.starts_on, 9), tick=False):
        again = client.post(f"{page}/check-in", data={"student": child.id, "body": "again"})
    assert again.status_code == 422 and "has already checked in" in again.get_data(True)


def test_a_family_can_hide_its_childs_name_on_the_leaderboard(app, tenant, camp_setup):
    camp, contact, child = camp_setup
    check_in(tenant, camp, contact, child, at(camp.starts_on, 8))
    db.session.commit()
    client = app.test_client()
    sign_in(client, contact)
    page = f"/{tenant.slug}/camp/{camp.code}"

    with time_machine.travel(at(camp.starts_on, 10), tick=False):
        assert child.name in client.get(page).get_data(as_text=True)
        client.post(f"{page}/privacy", data={"student": child.id, "hides_name": "y"})
        leaders = queries.leaderboard(camp, camp.starts_on)
    assert leaders[0].name_shown != child.name and leaders[0].hides_name


def test_a_non_member_gets_a_404_and_a_stranger_is_asked_to_sign_in(app, tenant, camp_setup):
    camp, _, _ = camp_setup
    outsider = make_family(tenant, 50)
    db.session.commit()
    client = app.test_client()
    page = f"/{tenant.slug}/camp/{camp.code}"

    assert client.get(page).status_code == 302  # to the family page's sign-in
    sign_in(client, outsider)
    assert client.get(page).status_code == 404


def test_staff_see_rates_children_at_risk_and_export_csv(app, tenant, owner_client, camp_setup):
    camp, contact, child = camp_setup
    _, lazy = member_family(tenant, camp.group, 60, camp)
    member_family(tenant, camp.group, 61)  # not in the camp: neither counted nor at risk
    for offset in (0, 1, 2):
        check_in(tenant, camp, contact, child, at(camp.starts_on, 8, offset=offset))
    db.session.commit()

    with time_machine.travel(at(camp.starts_on, 10, offset=2), tick=False):
        figures = queries.figures(camp, camp.starts_on + timedelta(days=2))
        page = owner_client.get(f"/staff/{tenant.slug}/camps/{camp.id}")
        csv = owner_client.get(f"/staff/{tenant.slug}/camps/{camp.id}/export.csv")

    assert [(done, total) for _, done, total in figures.rates] == [(1, 2)] * 3
    assert [s.student.id for s in figures.at_risk] == [lazy.id]
    assert page.status_code == 200 and "50%" in page.get_data(as_text=True)
    lines = csv.get_data(as_text=True).splitlines()
    assert len(lines) == 3 and child.name in lines[1] + lines[2]


def test_staff_set_up_a_camp_and_bad_dates_change_nothing(app, tenant, owner_client):
    group, _ = make_group(tenant)
    db.session.commit()
    start = first_day()
    data = {
        "title": "英语晨读",
        "starts_on": start.isoformat(),
        "ends_on": (start - timedelta(days=1)).isoformat(),
        "window_start": "06:00",
        "window_end": "22:00",
        "nudge_at": "20:00",
        "makeup_cards": "2",
        "makeup_days": "3",
    }
    url = f"/staff/{tenant.slug}/groups/{group.id}/camps/new"

    refused = owner_client.post(url, data=data)
    assert refused.status_code == 422 and "ends before it starts" in refused.get_data(True)
    assert queries.group_camps(group) == []

    saved = owner_client.post(
        url, data={**data, "ends_on": (start + timedelta(days=20)).isoformat()}
    )
    assert saved.status_code == 302
    camp = queries.group_camps(group)[0]
    task = owner_client.post(
        f"/staff/{tenant.slug}/camps/{camp.id}/tasks",
        data={"day": start.isoformat(), "prompt": "朗读第1课"},
    )
    assert task.status_code == 302 and queries.task_for(camp, start).prompt == "朗读第1课"


def test_another_institutions_camp_is_a_404(app, tenant, camp_setup):
    camp, contact, _ = camp_setup
    other = make_institution()
    db.session.commit()
    from app.accounts.models import Role
    from tests.factories import make_member

    client = app.test_client()
    login(client, make_member(other, Role.OWNER))
    assert client.get(f"/staff/{other.slug}/camps/{camp.id}").status_code == 404
    family = app.test_client()
    sign_in(family, contact)
    assert family.get(f"/{other.slug}/camp/{camp.code}").status_code == 404
    assert utcnow()


def test_a_teachers_comment_on_a_check_in_reaches_the_family_once(app, tenant, camp_setup):
    camp, contact, child = camp_setup
    checkin = check_in(tenant, camp, contact, child, at(camp.starts_on, 8))
    post = db.session.get(Post, checkin.post_id)

    groups.write_staff_post(tenant, camp.group, None, "读得很流利，继续加油！", reply_to=post)
    db.session.commit()  # the outbox is written as the transaction commits

    sent = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.template == "group_reply")
    ).all()
    assert [m.recipient for m in sent if m.channel == "email"] == [contact.email]
    assert sent[0].context["reply"] == "读得很流利，继续加油！"


def test_a_check_in_whose_post_is_withdrawn_no_longer_counts_nor_pays(tenant, camp_setup):
    camp, contact, child = camp_setup
    checkin = check_in(tenant, camp, contact, child, at(camp.starts_on, 8))
    post = db.session.get(Post, checkin.post_id)
    assert loyalty_queries.balance(contact) > 0

    groups.remove_post(post, None, reason="off topic")
    db.session.flush()

    assert queries.checked_days(camp).get(child.id) is None
    assert loyalty_queries.balance(contact) == 0
    again = check_in(tenant, camp, contact, child, at(camp.starts_on, 9))  # the day is open
    assert again.day == camp.starts_on


def test_a_check_in_with_a_qr_code_picture_is_withdrawn_when_its_job_blocks_it(tenant, camp_setup):
    import segno

    camp, contact, child = camp_setup
    camp.group.qr_outcome = "block"
    buffer = io.BytesIO()
    segno.make("https://ads.example/join", error="m").save(buffer, kind="png", scale=10)
    with time_machine.travel(at(camp.starts_on, 8), tick=False):
        checkin, post = services.check_in(
            tenant, camp, contact, child, "今天的作业", pictures=[buffer.getvalue()]
        )
        assert checkin is not None and post.status == PostStatus.HELD  # until looked at
        groups.check_pictures(tenant, post)

    assert post.status == PostStatus.BLOCKED
    assert queries.checked_days(camp).get(child.id) is None
    assert loyalty_queries.balance(contact) == 0


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"nudge_at": time(22, 30)}, "nudge_outside_window"),
        ({"nudge_at": time(5, 0)}, "nudge_outside_window"),
        ({"days": 400}, "too_long"),
        ({"weekdays": "absent"}, "no_days"),
    ],
)
def test_camp_settings_that_cannot_work_are_refused(tenant, change, code):
    group, _ = make_group(tenant)
    start = first_day()
    values = {
        "title": "打卡",
        "starts_on": start,
        "ends_on": start + timedelta(days=change.get("days", 2) - 1),
        "weekdays": [],
        "window_start": time(6, 0),
        "window_end": time(22, 0),
        "nudge_at": change.get("nudge_at", time(20, 0)),
    }
    if change.get("weekdays") == "absent":  # a 2-day camp on a weekday it never reaches
        values["weekdays"] = [(start + timedelta(days=3)).weekday()]

    with pytest.raises(ServiceError) as refused:
        services.create_camp(tenant, group, **values)
    assert refused.value.code == code


def test_a_family_enters_its_child_in_the_camp_from_the_page(app, tenant):
    group, _ = make_group(tenant)
    camp = make_camp(tenant, group)
    contact, child = member_family(tenant, group, 70)
    db.session.commit()
    client = app.test_client()
    sign_in(client, contact)
    page = f"/{tenant.slug}/camp/{camp.code}"

    with time_machine.travel(at(camp.starts_on, 10), tick=False):
        assert "Take part in the camp" in client.get(page).get_data(as_text=True)
        client.post(f"{page}/join", data={"students": [child.id]})
        html = client.get(page).get_data(as_text=True)

    assert [s.id for s in queries.participants(camp)] == [child.id]
    assert "Take part in the camp" not in html
