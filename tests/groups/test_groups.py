"""Groups: joining by invitation, the feed that updates itself, moderation that keeps ads
out, announcements that reach every family once, and tenancy."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import segno
import time_machine
from PIL import Image
from sqlalchemy import func, select

from app.accounts.models import Role
from app.contacts.models import SourceKind
from app.contacts.services import ContactDetails, StudentDetails, Touch, find_or_create_contact
from app.db import utcnow
from app.errors import ServiceError
from app.extensions import db, redis_connection
from app.groups import queries, services
from app.groups.models import (
    ActivityKind,
    AnnouncementRead,
    Group,
    GroupKind,
    GroupMember,
    JoinVia,
    MemberActivity,
    MemberRole,
    MemberStatus,
    ModerationAction,
    Outcome,
    Post,
    PostReaction,
    PostStatus,
)
from app.groups.tasks import sweep_groups, sweep_views
from app.jobs import run_burst
from app.notifications.models import OutboxMessage
from app.portal.services import SESSION_KEY
from app.tenancy import bound
from tests.factories import make_course, make_institution, make_member
from tests.helpers import flask_dispatches, login, statements

ORDINARY = "老师好，孩子今天的作业第3题不会做，能讲一下吗？"


def make_family(institution, n: int = 0, email: bool = True):
    contact, _ = find_or_create_contact(
        institution,
        phone=f"1390013{n:04d}",
        details=ContactDetails(
            parent_name=f"家长{n}",
            email=f"parent{n}@example.com" if email else None,
            students=[StudentDetails(f"孩子{n}")],
        ),
        touch=Touch(SourceKind.STAFF),
    )
    return contact


def make_group(institution, **settings):
    group = services.create_group(
        institution, title="三年级数学家长群", rules="1. 不发广告\n2. 友善交流", **settings
    )
    invite = services.create_invite(institution, group)
    return group, invite


def sign_in(client, contact) -> None:
    with client.session_transaction() as session:
        session[SESSION_KEY] = {str(contact.institution_id): contact.id}


@pytest.fixture
def group_setup(tenant):
    group, invite = make_group(tenant)
    member = services.add_member(tenant, group, make_family(tenant, 1))
    db.session.commit()
    return group, invite, member


# --- joining -----------------------------------------------------------------------------------


def test_a_family_joins_by_link_after_accepting_the_rules(app, tenant):
    group, invite = make_group(tenant)
    contact = make_family(tenant, 2)
    db.session.commit()
    client = app.test_client()
    link = f"/{tenant.slug}/j/{invite.code}?via=qr"

    anonymous = client.get(link)
    assert anonymous.status_code == 200 and "一次性登录链接" not in anonymous.get_data(True)
    assert "Get my link" in anonymous.get_data(True)

    sign_in(client, contact)
    page = client.get(link).get_data(as_text=True)
    assert "不发广告" in page  # the rules, shown before joining
    refused = client.post(link, data={})
    assert refused.status_code == 422 and "Please accept the group rules" in refused.get_data(True)
    assert services.active_member_count(group) == 0

    joined = client.post(link, data={"accept_rules": "y"})

    assert joined.status_code == 302 and joined.headers["Location"].endswith(f"/g/{group.code}")
    member = db.session.scalar(select(GroupMember).where(GroupMember.contact_id == contact.id))
    assert member.status == MemberStatus.ACTIVE and member.joined_via == JoinVia.QR
    assert member.rules_accepted_at is not None
    assert client.get(f"/{tenant.slug}/g/{group.code}").status_code == 200


def test_a_revoked_expired_or_used_up_invitation_lets_nobody_in(app, tenant):
    group, _ = make_group(tenant)
    revoked = services.create_invite(tenant, group)
    services.revoke_invite(revoked)
    expired = services.create_invite(tenant, group, expires_at=utcnow() - timedelta(minutes=1))
    capped = services.create_invite(tenant, group, use_cap=1)
    first, second = make_family(tenant, 3), make_family(tenant, 4)
    db.session.commit()

    for invite in (revoked, expired):
        client = app.test_client()
        sign_in(client, first)
        response = client.post(f"/{tenant.slug}/j/{invite.code}", data={"accept_rules": "y"})
        assert response.status_code == 422 and "expired" in response.get_data(True)

    clients = [app.test_client(), app.test_client()]
    for client, family in zip(clients, (first, second), strict=True):
        sign_in(client, family)
    answers = [
        c.post(f"/{tenant.slug}/j/{capped.code}", data={"accept_rules": "y"}) for c in clients
    ]

    assert [a.status_code for a in answers] == [302, 422]
    assert services.active_member_count(group) == 1
    db.session.refresh(capped)
    assert capped.uses == 1


def test_a_group_with_approval_lets_a_family_in_once_staff_approve(app, tenant, owner):
    group, invite = make_group(tenant, needs_approval=True)
    contact = make_family(tenant, 5)
    db.session.commit()
    client = app.test_client()
    sign_in(client, contact)

    client.post(f"/{tenant.slug}/j/{invite.code}", data={"accept_rules": "y"})
    member = db.session.scalar(select(GroupMember).where(GroupMember.contact_id == contact.id))
    assert member.status == MemberStatus.PENDING
    assert "waiting for the group" in client.get(f"/{tenant.slug}/g/{group.code}").get_data(True)

    services.approve_member(member, owner)
    db.session.commit()
    assert member.status == MemberStatus.ACTIVE


def test_a_removed_member_loses_the_group_on_their_next_request(app, tenant, owner, group_setup):
    group, invite, member = group_setup
    client = app.test_client()
    sign_in(client, member.contact)
    page = f"/{tenant.slug}/g/{group.code}"
    assert client.get(page).status_code == 200

    services.remove_member(member, owner, ban=True)
    db.session.commit()

    assert client.get(page).status_code == 404
    assert client.get(page + "/updates").status_code == 403
    assert client.post(page + "/posts", data={"body": "hi"}).status_code == 404
    rejoin = client.post(f"/{tenant.slug}/j/{invite.code}", data={"accept_rules": "y"})
    assert rejoin.status_code == 422 and "cannot join" in rejoin.get_data(True)


def test_another_institutions_group_and_invite_are_404(app, tenant, group_setup):
    group, invite, member = group_setup
    other = make_institution(slug="other-school")
    db.session.commit()
    client = app.test_client()
    sign_in(client, member.contact)

    assert client.get(f"/{other.slug}/g/{group.code}").status_code == 404
    assert client.get(f"/{other.slug}/j/{invite.code}").status_code == 404
    assert client.post(f"/{other.slug}/g/{group.code}/posts", data={"body": "x"}).status_code == 404


# --- moderation --------------------------------------------------------------------------------

CASES = [
    ("link", "看这个 https://ads.example.com/win", Outcome.HOLD),
    ("phone", "有需要的联系我 138 0013 8000", Outcome.HOLD),
    ("phone", "call +86 139-0013-9000", Outcome.HOLD),
    ("wechat", "加我VX: abc_123", Outcome.BLOCK),
    ("keyword", "低价代购，私聊", Outcome.BLOCK),
]


@pytest.mark.parametrize(("rule", "text", "outcome"), CASES)
def test_each_rule_holds_or_blocks_its_case(tenant, group_setup, rule, text, outcome):
    group, _, member = group_setup
    group.wechat_outcome = Outcome.BLOCK
    group.keywords = ["代购"]

    post = services.write_post(tenant, group, member, text)

    assert rule in {finding["rule"] for finding in post.findings}
    expected = PostStatus.HELD if outcome == Outcome.HOLD else PostStatus.BLOCKED
    assert post.status == expected
    assert services.broken_rules(post)


def test_an_ordinary_post_and_an_allowed_link_are_published(tenant, group_setup):
    group, _, member = group_setup
    group.allowed_domains = ["example.edu.cn"]

    posts = [
        services.write_post(tenant, group, member, ORDINARY),
        services.write_post(tenant, group, member, "作业在 https://www.example.edu.cn/hw 下载"),
    ]

    assert [p.status for p in posts] == [PostStatus.PUBLISHED, PostStatus.PUBLISHED]


def test_a_flood_of_posts_is_blocked_from_the_sixth(tenant, group_setup):
    group, _, member = group_setup

    statuses = [
        services.write_post(tenant, group, member, f"{ORDINARY} {n}").status for n in range(6)
    ]

    assert statuses == [PostStatus.PUBLISHED] * 5 + [PostStatus.BLOCKED]


def test_three_strikes_mute_the_member(tenant, group_setup):
    group, _, member = group_setup
    group.strikes_to_mute = 3
    for _ in range(3):
        services.write_post(tenant, group, member, "加我VX: abc_123")

    assert member.is_muted(utcnow())
    with pytest.raises(ServiceError) as refused:
        services.write_post(tenant, group, member, ORDINARY)
    assert refused.value.code == "muted"


def test_a_held_post_is_seen_by_its_author_only_until_staff_approve_it(
    app, tenant, owner, group_setup
):
    group, _, member = group_setup
    other = services.add_member(tenant, group, make_family(tenant, 9))
    db.session.commit()
    author, reader = app.test_client(), app.test_client()
    sign_in(author, member.contact)
    sign_in(reader, other.contact)
    page = f"/{tenant.slug}/g/{group.code}"

    sent = author.post(page + "/posts", data={"body": "联系我 13800138000"})
    assert sent.status_code == 302
    assert "Waiting for review" in author.get(page).get_data(True)
    assert "13800138000" not in reader.get(page).get_data(True)

    post = db.session.scalar(select(Post).where(Post.member_id == member.id))
    services.review_post(post, True, owner)
    db.session.commit()
    assert "13800138000" in reader.get(page).get_data(True)


def test_nothing_a_member_writes_runs_as_html(app, tenant, group_setup):
    group, _, member = group_setup
    client = app.test_client()
    sign_in(client, member.contact)
    page = f"/{tenant.slug}/g/{group.code}"

    client.post(page + "/posts", data={"body": '<script>alert("x")</script><img src=x onerror=1>'})
    html = client.get(page).get_data(as_text=True)

    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert" in html


# --- the feed updating itself ------------------------------------------------------------------


def test_an_unchanged_feed_is_answered_in_front_of_flask_and_a_new_post_is_sent(
    app, tenant, group_setup, monkeypatch
):
    group, _, member = group_setup
    other = services.add_member(tenant, group, make_family(tenant, 8))
    db.session.commit()
    reader, writer = app.test_client(), app.test_client()
    sign_in(reader, member.contact)
    sign_in(writer, other.contact)
    updates = f"/{tenant.slug}/g/{group.code}/updates"
    first = reader.get(updates + "?after=0")
    assert first.status_code == 200 and first.get_json()["items"] == []
    etag = first.headers["ETag"]

    dispatched = flask_dispatches(app, monkeypatch)
    with statements() as sent:
        unchanged = [reader.get(updates, headers={"If-None-Match": etag}) for _ in range(3)]
    assert [r.status_code for r in unchanged] == [304, 304, 304]
    assert sent == [] and dispatched == []

    writer.post(f"/{tenant.slug}/g/{group.code}/posts", data={"body": ORDINARY})
    changed = reader.get(updates + "?after=0", headers={"If-None-Match": etag})

    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    (item,) = changed.get_json()["items"]
    assert "第3题" in item["html"] and item["reply_to"] is None


# --- announcements -----------------------------------------------------------------------------


def test_an_announcement_reaches_each_of_50_members_once_across_a_redis_flush(
    tenant, owner, mail_server
):
    group, _ = make_group(tenant)
    for n in range(50):
        services.add_member(tenant, group, make_family(tenant, 100 + n))
    db.session.commit()

    services.write_staff_post(tenant, group, owner, "本周六的课改在3号教室。", announcement=True)
    db.session.commit()
    redis_connection.client.flushall()  # the job that would send it is gone
    run_burst()
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    assert sweep_groups() == 1  # the sweeper finds it unsent and sends it
    run_burst()
    sweep_groups()  # and again: nothing more
    run_burst()

    per_family = db.session.execute(
        select(OutboxMessage.recipient, func.count())
        .where(OutboxMessage.template == "group_announcement", OutboxMessage.channel == "email")
        .group_by(OutboxMessage.recipient)
    ).all()
    assert len(per_family) == 50 and {count for _, count in per_family} == {1}
    received = [m for n in range(50) for m in mail_server.to(f"parent{100 + n}@example.com")]
    assert len(received) == 50


def test_a_scheduled_announcement_waits_for_its_time(tenant, owner, group_setup):
    group, _, _member = group_setup
    later = utcnow() + timedelta(hours=2)
    post = services.write_staff_post(
        tenant, group, owner, "明天放假", announcement=True, publish_at=later
    )
    db.session.commit()

    assert sweep_groups() == 0 and post.notified_at is None


def test_the_group_is_listed_for_staff_with_its_members(owner_client, tenant, group_setup):
    group, _, _ = group_setup
    listing = owner_client.get(f"/staff/{tenant.slug}/groups").get_data(as_text=True)
    detail = owner_client.get(f"/staff/{tenant.slug}/groups/{group.id}").get_data(as_text=True)

    assert group.title in listing and "家长1" in detail


def test_staff_create_a_group_with_its_first_invitation(owner_client, institution):
    form = {
        "title": "Open day families",
        "kind": "open",
        "rules": "Be kind.",
        "link_outcome": "hold",
        "phone_outcome": "hold",
        "wechat_outcome": "block",
        "keyword_outcome": "block",
        "flood_posts": "5",
        "allowed_domains": "example.edu.cn\nnot a domain",
    }
    new = f"/staff/{institution.slug}/groups/new"
    refused = owner_client.post(new, data=form)
    assert refused.status_code == 422 and "is not a domain" in refused.get_data(True)
    assert db.session.scalar(select(func.count()).select_from(Group)) == 0

    created = owner_client.post(new, data={**form, "allowed_domains": "Example.edu.cn"})

    assert created.status_code == 302
    group = db.session.scalar(select(Group))
    assert group.allowed_domains == ["example.edu.cn"] and group.title == "Open day families"
    with bound(institution):
        assert len(queries.invites(group)) == 1


# --- pictures ----------------------------------------------------------------------------------


def photo(text: str | None = None, size=(1200, 900), exif: bool = False) -> bytes:
    """A JPEG photo, with a QR code of `text` in it if given (as an advert would carry),
    and with EXIF (a camera and a GPS position) if asked."""
    picture = Image.new("RGB", size, (230, 220, 200))
    if text is not None:
        qr = io.BytesIO()
        segno.make(text, error="m").save(qr, kind="png", scale=8, border=4)
        picture.paste(Image.open(qr).convert("RGB"), (150, 150))
    out = io.BytesIO()
    extra = {}
    if exif:
        tags = Image.Exif()
        tags[0x010F] = "PhoneMaker"  # Make
        tags[0x8825] = {1: "N", 2: (31.0, 12.0, 0.0)}  # GPSInfo
        extra["exif"] = tags
    picture.save(out, format="JPEG", quality=90, **extra)
    return out.getvalue()


def post_with_pictures(client, tenant, group, pictures, body=ORDINARY):
    files = [(io.BytesIO(data), f"photo{n}.jpg") for n, data in enumerate(pictures)]
    return client.post(
        f"/{tenant.slug}/g/{group.code}/posts",
        data={"body": body, "pictures": files},
        content_type="multipart/form-data",
    )


@pytest.mark.parametrize(
    ("outcome", "status"), [(Outcome.HOLD, "held"), (Outcome.BLOCK, "blocked")]
)
def test_a_picture_with_a_qr_code_is_held_or_blocked_once_looked_at(
    app, tenant, group_setup, outcome, status
):
    group, _, member = group_setup
    group.qr_outcome = outcome
    db.session.commit()
    client = app.test_client()
    sign_in(client, member.contact)

    sent = post_with_pictures(
        client, tenant, group, [photo(), photo("https://ads.example.com/win")]
    )
    assert sent.status_code == 302
    post = db.session.scalar(select(Post))
    assert post.status == PostStatus.HELD and post.awaits_image_check  # until the job
    run_burst()

    db.session.refresh(post)
    assert post.status == status and post.images_checked_at is not None
    assert {"rule": "qr", "excerpt": "https://ads.example.com/win"} in post.findings
    action = db.session.scalar(select(ModerationAction).where(ModerationAction.post_id == post.id))
    assert action.action == status and action.reason == "rules:qr"


def test_plain_pictures_are_published_upright_smaller_and_without_their_exif(
    app, tenant, group_setup
):
    group, _, member = group_setup
    client, other = app.test_client(), app.test_client()
    sign_in(client, member.contact)
    reader = services.add_member(tenant, group, make_family(tenant, 7))
    db.session.commit()
    sign_in(other, reader.contact)

    post_with_pictures(client, tenant, group, [photo(size=(4000, 3000), exif=True)])
    run_burst()

    post = db.session.scalar(select(Post))
    assert post.status == PostStatus.PUBLISHED
    (image,) = post.images
    stored = Image.open(io.BytesIO(image.data))
    assert max(stored.size) == 2048 and not stored.getexif()
    page = other.get(f"/{tenant.slug}/g/{group.code}").get_data(as_text=True)
    shown = other.get(f"/{tenant.slug}/g/{group.code}/pictures/{image.id}")
    assert f"/pictures/{image.id}" in page and shown.status_code == 200
    assert shown.data == image.data
    stranger = app.test_client()
    sign_in(stranger, make_family(tenant, 6))
    db.session.commit()
    assert stranger.get(f"/{tenant.slug}/g/{group.code}/pictures/{image.id}").status_code == 404


def test_a_file_that_is_not_a_picture_or_too_many_pictures_change_nothing(app, tenant, group_setup):
    group, _, member = group_setup
    client = app.test_client()
    sign_in(client, member.contact)

    page = f"/{tenant.slug}/g/{group.code}"

    fake = post_with_pictures(client, tenant, group, [b"<script>alert(1)</script>"])
    after_fake = client.get(page).get_data(as_text=True)
    too_many = post_with_pictures(client, tenant, group, [photo(size=(64, 64))] * 10)
    after_too_many = client.get(page).get_data(as_text=True)

    assert fake.status_code == too_many.status_code == 302
    assert "The image must be a PNG, JPEG or WebP file." in after_fake
    assert "At most 9 pictures in a post." in after_too_many
    assert db.session.scalar(select(func.count()).select_from(Post)) == 0


def test_pictures_too_large_together_get_a_clear_page_leading_back_to_the_group(
    app, tenant, group_setup, monkeypatch
):
    """More than MAX_CONTENT_LENGTH in one post (phone photos, where the page's script
    could not make them smaller): nothing is kept, and the family is told why and led
    back to the page it came from, never to another site's."""
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 2 * 1024 * 1024)
    group, _, member = group_setup
    client = app.test_client()
    sign_in(client, member.contact)
    page = f"http://localhost/{tenant.slug}/g/{group.code}"
    pictures = [(io.BytesIO(b"\xff" * 1024 * 1024), f"photo{n}.jpg") for n in range(3)]

    refused = client.post(
        f"/{tenant.slug}/g/{group.code}/posts",
        data={"body": ORDINARY, "pictures": pictures},
        content_type="multipart/form-data",
        headers={"Referer": page},
    )
    elsewhere = client.post(
        f"/{tenant.slug}/g/{group.code}/posts",
        data={"body": ORDINARY, "pictures": (io.BytesIO(b"\xff" * 3 * 1024 * 1024), "p.jpg")},
        content_type="multipart/form-data",
        headers={"Referer": "https://evil.example/phish"},
    )

    assert refused.status_code == elsewhere.status_code == 413
    html = refused.get_data(as_text=True)
    assert "The pictures are too large together: send fewer at a time." in html
    assert f'href="/{tenant.slug}/g/{group.code}"' in html
    assert "evil.example" not in elsewhere.get_data(as_text=True)
    assert "The pictures are too large together" in elsewhere.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Post)) == 0


def test_a_reported_post_waits_for_staff_who_keep_or_remove_it(
    app, tenant, owner, owner_client, group_setup
):
    group, _, member = group_setup
    reader = services.add_member(tenant, group, make_family(tenant, 5))
    post = services.write_post(tenant, group, member, ORDINARY)
    db.session.commit()
    client = app.test_client()
    sign_in(client, reader.contact)
    detail = f"/staff/{tenant.slug}/groups/{group.id}"
    assert "Reported by members" not in owner_client.get(detail).get_data(True)

    assert client.post(f"/{tenant.slug}/g/{group.code}/posts/{post.id}/report").status_code == 302
    assert "Reported by members" in owner_client.get(detail).get_data(True)

    owner_client.post(f"{detail}/posts/{post.id}/keep")
    assert "Reported by members" not in owner_client.get(detail).get_data(True)
    client.post(f"/{tenant.slug}/g/{group.code}/posts/{post.id}/report")
    owner_client.post(f"{detail}/posts/{post.id}/remove")
    db.session.refresh(post)
    assert post.status == PostStatus.REMOVED
    assert "Reported by members" not in owner_client.get(detail).get_data(True)


def test_a_family_outside_an_open_community_is_led_to_its_invitation(app, tenant):
    group, invite = make_group(tenant, kind=GroupKind.OPEN)
    closed, _ = make_group(tenant, kind=GroupKind.CLASS)
    outsider = make_family(tenant, 4)
    db.session.commit()
    client = app.test_client()
    sign_in(client, outsider)

    opened = client.get(f"/{tenant.slug}/g/{group.code}")

    assert opened.status_code == 302 and opened.headers["Location"].endswith(f"/j/{invite.code}")
    assert client.get(f"/{tenant.slug}/g/{closed.code}").status_code == 404


# --- activity and reads ------------------------------------------------------------------------


def test_views_posts_and_announcement_reads_are_recorded_once_a_day(
    app, tenant, owner, owner_client, group_setup
):
    group, _, member = group_setup
    other = services.add_member(tenant, group, make_family(tenant, 3))
    announcement = services.write_staff_post(tenant, group, owner, "周六停课", announcement=True)
    db.session.commit()
    client = app.test_client()
    sign_in(client, member.contact)
    page = f"/{tenant.slug}/g/{group.code}"

    with statements() as sent:
        client.get(page)
        client.get(page)  # the same day: still one view
    assert not [s for s in sent if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    client.post(page + "/posts", data={"body": ORDINARY})
    assert sweep_views() == 1
    run_burst()

    kinds = db.session.execute(
        select(MemberActivity.member_id, MemberActivity.kind).order_by(MemberActivity.kind)
    ).all()
    assert kinds == [(member.id, ActivityKind.POSTED), (member.id, ActivityKind.VIEWED)]
    reads = db.session.execute(select(AnnouncementRead.post_id, AnnouncementRead.member_id)).all()
    assert reads == [(announcement.id, member.id)]
    detail = owner_client.get(f"/staff/{tenant.slug}/groups/{group.id}").get_data(as_text=True)
    assert "Read by 1 of 2 members" in detail and other.contact.parent_name in detail
    listing = owner_client.get(f"/staff/{tenant.slug}/groups").get_data(as_text=True)
    assert "Active this week" in listing


def test_a_member_gives_one_reaction_and_can_take_it_back(app, tenant, group_setup):
    group, _, member = group_setup
    post = services.write_post(tenant, group, member, ORDINARY)
    reader = services.add_member(tenant, group, make_family(tenant, 2))
    db.session.commit()
    client = app.test_client()
    sign_in(client, reader.contact)
    react = f"/{tenant.slug}/g/{group.code}/posts/{post.id}/react"

    client.post(react)
    page = client.get(f"/{tenant.slug}/g/{group.code}").get_data(as_text=True)
    assert 'aria-pressed="true"' in page and "👍 1" in page
    client.post(react)  # taken back
    assert db.session.scalar(select(func.count()).select_from(PostReaction)) == 0
    client.post(react)
    assert db.session.scalar(select(func.count()).select_from(PostReaction)) == 1
    kinds = set(
        db.session.scalars(select(MemberActivity.kind).where(MemberActivity.member_id == reader.id))
    )
    assert kinds == {ActivityKind.REACTED}


def test_a_trial_group_closes_days_after_the_last_lesson_with_its_farewell_once(
    tenant, owner, mail_server
):
    course = make_course(tenant)  # lessons in the coming days
    group, _ = make_group(
        tenant,
        kind=GroupKind.TRIAL,
        course_id=course.id,
        close_days_after_last_lesson=3,
        farewell="感谢参加试听！寒假班报名请点主页。",
    )
    member = services.add_member(tenant, group, make_family(tenant, 8))
    db.session.commit()
    last_lesson = max(lesson.starts_at for lesson in course.lessons)

    with time_machine.travel(last_lesson + timedelta(days=2)):
        assert sweep_groups() == 0  # not yet
    with time_machine.travel(last_lesson + timedelta(days=3, minutes=1)):
        assert sweep_groups() == 1
        run_burst()
        sweep_groups()  # and again: nothing more
        run_burst()
        db.session.refresh(group)
        assert group.is_closed(utcnow()) and group.farewell_posted_at is not None
        with pytest.raises(ServiceError):
            services.write_post(tenant, group, member, ORDINARY)

    farewell = db.session.scalars(select(Post).where(Post.kind == "announcement")).one()
    assert farewell.body.startswith("感谢参加试听") and farewell.is_pinned
    assert len(mail_server.to("parent8@example.com")) == 1


# --- roles -------------------------------------------------------------------------------------


def test_staff_make_a_member_the_teacher_shown_in_the_list_the_feed_and_the_log(
    app, tenant, owner_client, group_setup
):
    group, _, member = group_setup
    services.write_post(tenant, group, member, ORDINARY)
    db.session.commit()
    detail = f"/staff/{tenant.slug}/groups/{group.id}"
    version = services.feed_version(tenant.id, group.code)
    family = app.test_client()
    sign_in(family, member.contact)
    assert "Teacher</span>" not in family.get(f"/{tenant.slug}/g/{group.code}").get_data(True)

    changed = owner_client.post(f"{detail}/members/{member.id}/role", data={"role": "teacher"})

    assert changed.status_code == 302 and changed.headers["Location"].endswith("#members")
    page = owner_client.get(detail).get_data(as_text=True)
    assert "Role changed." in page  # flashed
    assert '<option value="teacher" selected>Teacher</option>' in page
    assert "Role changed · 家长1 · Member → Teacher" in page  # the moderation log
    assert services.feed_version(tenant.id, group.code) > version  # open pages ask again
    feed = family.get(f"/{tenant.slug}/g/{group.code}").get_data(as_text=True)
    assert '<span class="badge">Teacher</span>' in feed

    owner_client.post(f"{detail}/members/{member.id}/role", data={"role": "teacher"})  # again
    logged = db.session.scalars(
        select(ModerationAction.user_id).where(ModerationAction.action == "role")
    ).all()
    assert len(logged) == 1 and logged[0] is not None  # who did it, once


def test_a_role_that_is_not_one_or_a_family_no_longer_in_the_group_changes_nothing(
    tenant, owner, owner_client, group_setup
):
    group, _, member = group_setup
    gone = services.add_member(tenant, group, make_family(tenant, 2))
    services.remove_member(gone, owner)
    db.session.commit()
    members = f"/staff/{tenant.slug}/groups/{group.id}/members"

    bad = owner_client.post(f"{members}/{member.id}/role", data={"role": "owner"})
    removed = owner_client.post(f"{members}/{gone.id}/role", data={"role": "assistant"})

    assert bad.status_code == removed.status_code == 302
    page = owner_client.get(f"/staff/{tenant.slug}/groups/{group.id}").get_data(as_text=True)
    assert "The role was not changed: choose one of the roles." in page
    assert "Only a family in the group can be given a role." in page
    db.session.refresh(member)
    db.session.refresh(gone)
    assert (member.role, gone.role) == (MemberRole.MEMBER, MemberRole.MEMBER)
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(ModerationAction)
            .where(ModerationAction.action == "role")
        )
        == 0
    )
    with pytest.raises(ServiceError):
        services.set_member_role(tenant, gone, MemberRole.TEACHER, owner)


def test_another_institutions_member_or_another_groups_member_is_404(
    app, tenant, owner_client, group_setup
):
    group, _, member = group_setup
    other_group, _ = make_group(tenant)
    other = make_institution(slug="other-school")
    db.session.commit()
    with bound(other):
        other_owner = make_member(other, Role.OWNER)
    stranger = app.test_client()
    login(stranger, other_owner)
    role = f"groups/{group.id}/members/{member.id}/role"

    assert stranger.post(f"/staff/{other.slug}/{role}", data={"role": "teacher"}).status_code == 404
    assert (
        stranger.post(f"/staff/{tenant.slug}/{role}", data={"role": "teacher"}).status_code == 404
    )
    elsewhere = f"/staff/{tenant.slug}/groups/{other_group.id}/members/{member.id}/role"
    assert owner_client.post(elsewhere, data={"role": "teacher"}).status_code == 404
    db.session.refresh(member)
    assert member.role == MemberRole.MEMBER
