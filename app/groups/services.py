"""Groups: creating them, joining them, and what members and staff write in their feed.

Each change that an open group page must show (a post published, a reply, a post
removed, a member removed) bumps the group's feed version after the commit
(`_feed_changed`, through app.pagecache): an open page asks for what changed every few
seconds and, while the version is the one it has, gets a 304 in front of Flask.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import redis
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app import images as images_
from app import pagecache
from app.contacts import services as contact_services
from app.contacts.models import Contact
from app.db import utcnow
from app.errors import ServiceError
from app.extensions import db, redis_connection
from app.groups import moderation, queries
from app.groups.models import (
    MAX_POST_IMAGES,
    MEMBER_ROLE_LABELS,
    RULES,
    ActivityKind,
    AnnouncementRead,
    Group,
    GroupInvite,
    GroupKind,
    GroupMember,
    JoinVia,
    MemberActivity,
    MemberRole,
    MemberStatus,
    ModerationAction,
    Outcome,
    Post,
    PostImage,
    PostKind,
    PostReaction,
    PostStatus,
)
from app.jobs import enqueue_after_commit
from app.memberships import queries as vip
from app.notifications import services as notifications
from app.urls import external_url

log = logging.getLogger(__name__)

FLOOD_SECONDS = 30
PICTURE_MAX_BYTES = 8 * 1024 * 1024  # a phone's photo, before it is made smaller
SEVERITY = {Outcome.PUBLISH: 0, Outcome.HOLD: 1, Outcome.BLOCK: 2}


# --- the feed's version ------------------------------------------------------------------------

FEED = "group_feed"  # the pagecache kind whose version is a group's feed's


def feed_version(institution_id: int, group_code: str) -> int | None:
    """The group's feed version (0 before any change), or None if Redis does not answer:
    the caller then looks in the database."""
    return pagecache.current_version(institution_id, FEED, group_code)


def _feed_changed(group: Group) -> None:
    pagecache.changed(group.institution_id, FEED, group.code)


# --- groups and invites ------------------------------------------------------------------------


def create_group(institution, **values) -> Group:
    """A new group of the institution, with the settings staff chose."""
    group = Group(institution_id=institution.id, **values)
    db.session.add(group)
    db.session.flush()
    return group


def update_group(group: Group, **values) -> None:
    for name, value in values.items():
        setattr(group, name, value)
    db.session.flush()
    _feed_changed(group)


def create_invite(
    institution,
    group: Group,
    label: str | None = None,
    expires_at: datetime | None = None,
    use_cap: int | None = None,
) -> GroupInvite:
    invite = GroupInvite(
        institution_id=institution.id,
        group_id=group.id,
        label=label,
        expires_at=expires_at,
        use_cap=use_cap,
    )
    db.session.add(invite)
    db.session.flush()
    return invite


def revoke_invite(invite: GroupInvite) -> None:
    if invite.revoked_at is None:
        invite.revoked_at = utcnow()
        db.session.flush()


# --- members -----------------------------------------------------------------------------------

INVITE_UNUSABLE = _l("This invitation link has expired or is no longer valid. Ask for a new one.")


def join_group(
    institution, invite: GroupInvite, contact: Contact, via: JoinVia = JoinVia.LINK
) -> GroupMember:
    """The family joins the invite's group, having accepted its rules: as a member at once,
    or waiting for staff approval if the group asks for it. Joining again changes nothing;
    a removed family may come back, a banned one may not. The invite's use is counted last,
    by one conditional UPDATE (its cap holds under a rush)."""
    now = utcnow()
    group = invite.group
    if not invite.is_usable(now):
        raise ServiceError(INVITE_UNUSABLE, code="invite_unusable")
    member = queries.member_of(group, contact)
    if member is not None and member.status in (MemberStatus.ACTIVE, MemberStatus.PENDING):
        return member
    _check_can_join(group, contact, member, now)
    member = _admit(institution, group, contact, member, via, now)
    member.invite_id = invite.id
    used = db.session.scalar(
        update(GroupInvite)
        .where(
            GroupInvite.id == invite.id,
            (GroupInvite.use_cap.is_(None)) | (GroupInvite.uses < GroupInvite.use_cap),
        )
        .values(uses=GroupInvite.uses + 1)
        .returning(GroupInvite.id)
        .execution_options(synchronize_session=False)
    )
    if used is None:
        raise ServiceError(INVITE_UNUSABLE, code="invite_unusable")
    return member


def add_member(
    institution,
    group: Group,
    contact: Contact,
    via: JoinVia = JoinVia.STAFF,
    role: MemberRole = MemberRole.MEMBER,
) -> GroupMember:
    """Staff add a family (or a course or campaign does): no rules to accept first, no
    approval to wait for. A banned family is not added back by this."""
    now = utcnow()
    member = queries.member_of(group, contact)
    if member is not None and member.status == MemberStatus.ACTIVE:
        return member
    _check_can_join(group, contact, member, now)
    member = _admit(institution, group, contact, member, via, now, approved=True)
    member.role = role
    return member


VIP_ONLY = _l("This group is for VIP members only. Become one on your family page.")


def _check_can_join(
    group: Group, contact: Contact, member: GroupMember | None, now: datetime
) -> None:
    if group.is_closed(now):
        raise ServiceError(_l("This group is closed."), code="group_closed")
    if member is not None and member.status == MemberStatus.BANNED:
        raise ServiceError(_l("You cannot join this group."), code="banned")
    if group.kind == GroupKind.VIP and not vip.is_vip(contact, now):
        raise ServiceError(VIP_ONLY, code="vip_only")
    if group.member_cap is not None and active_member_count(group) >= group.member_cap:
        raise ServiceError(_l("This group is full."), code="group_full")


def active_member_count(group: Group) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(GroupMember)
        .where(GroupMember.group_id == group.id, GroupMember.status == MemberStatus.ACTIVE)
    )


def _admit(
    institution,
    group: Group,
    contact: Contact,
    member: GroupMember | None,
    via: JoinVia,
    now: datetime,
    approved: bool = False,
) -> GroupMember:
    status = MemberStatus.PENDING if group.needs_approval and not approved else MemberStatus.ACTIVE
    if member is None:
        member = GroupMember(
            institution_id=institution.id, group_id=group.id, contact_id=contact.id
        )
        db.session.add(member)
    member.status, member.joined_via, member.joined_at = status, via, now
    member.left_at = None
    member.rules_accepted_at = now
    if group.new_member_mute_minutes:
        member.muted_until = now + timedelta(minutes=group.new_member_mute_minutes)
    db.session.flush()
    return member


def join_course_groups(institution, course, contact: Contact, via: JoinVia) -> int:
    """A family that paid for a course (or whose group-buy team filled) joins the course's
    open class groups: no invitation, no approval. Returns the groups joined."""
    groups = db.session.scalars(
        select(Group).where(
            Group.institution_id == institution.id,
            Group.course_id == course.id,
            Group.kind == GroupKind.CLASS,
        )
    ).all()
    joined = 0
    for group in groups:
        try:
            add_member(institution, group, contact, via=via)
        except ServiceError:  # closed, full, or the family banned: nothing written
            continue
        joined += 1
    return joined


def offer_link(institution, offer: queries.GroupOffer) -> str:
    """The absolute link of a group offer (for a message): the group's page for a family
    in it, else its invitation."""
    if offer.invite is None:
        return external_url(
            "groups_public.group_page", institution_slug=institution.slug, code=offer.group.code
        )
    return external_url(
        "groups_public.join", institution_slug=institution.slug, code=offer.invite.code
    )


def offer_context(institution, course, contact: Contact) -> dict:
    """The group variables of a confirmation message (a registration, a filled group-buy
    team): the link of the course's group offered to the family (`offer_link`), its name
    and kind; empty when the course has no group to offer."""
    offer = queries.offer_for_course(course, contact, utcnow())
    if offer is None:
        return {"group_link": "", "group_title": "", "group_kind": ""}
    # The family's own sign-in link, going on to the group: no second sign-in step.
    then = urlsplit(offer_link(institution, offer)).path
    return {
        "group_link": contact_services.parent_page_url(institution, contact, then=then),
        "group_title": offer.group.title,
        "group_kind": offer.group.kind.value,
    }


def approve_member(member: GroupMember, actor) -> None:
    if member.status == MemberStatus.PENDING:
        member.status = MemberStatus.ACTIVE
        _log(member.group, "approved", actor, member=member)


def remove_member(member: GroupMember, actor, ban: bool = False, reason: str | None = None) -> None:
    """Take the family out of the group (and, banned, keep them out): they lose the group
    on their next request."""
    member.status = MemberStatus.BANNED if ban else MemberStatus.REMOVED
    member.left_at = utcnow()
    _log(member.group, "banned" if ban else "removed", actor, member=member, reason=reason)
    _feed_changed(member.group)  # their open page asks again, and is refused


def remove_from_vip_groups(institution, contact: Contact) -> int:
    """Take the family out of every VIP club of the institution (or out of the queue to
    join one): its VIP membership ended. Each removal is in the group's moderation log,
    with why. Returns the groups it left."""
    members = db.session.scalars(
        select(GroupMember)
        .join(Group, Group.id == GroupMember.group_id)
        .where(
            Group.institution_id == institution.id,
            Group.kind == GroupKind.VIP,
            GroupMember.contact_id == contact.id,
            GroupMember.status.in_([MemberStatus.ACTIVE, MemberStatus.PENDING]),
        )
        .order_by(GroupMember.id)
    ).all()
    for member in members:
        remove_member(member, None, reason=VIP_LAPSED)
    return len(members)


def mute_member(member: GroupMember, until: datetime, actor, reason: str | None = None) -> None:
    member.muted_until = until
    _log(member.group, "muted", actor, member=member, reason=reason)


def set_member_role(institution, member: GroupMember, role: MemberRole, actor) -> None:
    """Staff make a family of the group its teacher, its class assistant (班主任) or a member
    again: the badge by their name in the feed follows. Only a family in the group (or
    waiting to be let in) has a role; setting the role it has changes nothing."""
    if role not in MEMBER_ROLE_LABELS:
        raise ServiceError(_l("Choose one of the roles."), field="role", code="role")
    role = MemberRole(role)
    in_group = member.status in (MemberStatus.ACTIVE, MemberStatus.PENDING)
    if member.institution_id != institution.id or not in_group:
        raise ServiceError(_l("Only a family in the group can be given a role."), code="not_member")
    if member.role == role:
        return
    reason = f"{ROLE_PREFIX}{member.role.value},{role.value}"
    member.role = role
    _log(member.group, "role", actor, member=member, reason=reason)
    _feed_changed(member.group)  # their posts show the new badge


# --- posts -------------------------------------------------------------------------------------


def write_post(
    institution,
    group: Group,
    member: GroupMember,
    body: str,
    *,
    reply_to: Post | None = None,
    is_question: bool = False,
    pictures: list[bytes] = (),
) -> Post:
    """A member's post or reply, through the group's moderation: published, held for
    review (its author sees it as waiting) or blocked (kept for the moderation log, and
    its author told why: `broken_rules`). A member who is muted cannot post.

    Pictures (at most MAX_POST_IMAGES) are re-encoded here, and looked at for QR codes by
    a job (`check_pictures`): until it has, the post waits as held."""
    now = utcnow()
    if not member.is_active:
        raise ServiceError(_l("You are no longer a member of this group."), code="not_member")
    if group.is_closed(now):
        raise ServiceError(_l("This group is closed."), code="group_closed")
    if member.is_muted(now):
        raise ServiceError(_l("You are muted in this group for now."), code="muted")
    if len(pictures) > MAX_POST_IMAGES:
        raise ServiceError(
            _l("At most %(n)s pictures in a post.", n=MAX_POST_IMAGES),
            field="pictures",
            code="too_many",
        )
    images = [
        images_.reencoded_photo(data, PICTURE_MAX_BYTES, field="pictures") for data in pictures
    ]
    findings = moderation.text_findings(
        body,
        region=institution.country or "CN",
        allowed_domains=group.allowed_domains,
        keywords=group.keywords,
    )
    found = [{"rule": f.rule, "excerpt": f.excerpt} for f in findings]
    if _recent_posts(member, now) >= group.flood_posts:
        found.append({"rule": "flood", "excerpt": ""})
    outcome = _outcome(group, found)
    post = Post(
        institution_id=institution.id,
        group_id=group.id,
        kind=PostKind.REPLY if reply_to is not None else PostKind.POST,
        reply_to_id=reply_to.id if reply_to is not None else None,
        member_id=member.id,
        body=body,
        is_question=is_question and reply_to is None,
        findings=found,
        status=STATUS_OF[outcome],
        image_count=len(images),
    )
    if images and outcome == Outcome.PUBLISH:
        post.status = PostStatus.HELD  # until its pictures are looked at
    db.session.add(post)
    db.session.flush()
    for position, (data, content_type) in enumerate(images):
        db.session.add(
            PostImage(
                institution_id=institution.id,
                post_id=post.id,
                position=position,
                data=data,
                content_type=content_type,
            )
        )
    if outcome != Outcome.BLOCK:
        kind = ActivityKind.REPLIED if reply_to is not None else ActivityKind.POSTED
        record_activity(institution, member, kind)
    if images and outcome != Outcome.BLOCK:
        enqueue_after_commit(
            "groups.check_pictures", institution.id, post.id, job_id=f"pictures-{post.id}"
        )
    if outcome == Outcome.PUBLISH:
        if not images:
            _feed_changed(group)
        return post
    _log(group, post.status.value, None, member=member, post=post, reason=_rules_of(post))
    _strike(group, member, now)
    return post


STATUS_OF = {
    Outcome.PUBLISH: PostStatus.PUBLISHED,
    Outcome.HOLD: PostStatus.HELD,
    Outcome.BLOCK: PostStatus.BLOCKED,
}


def _outcome(group: Group, findings: list[dict]) -> Outcome:
    """The strictest outcome of the rules the findings broke (publish if none)."""
    return max(
        (group.outcome_of(item["rule"]) for item in findings),
        key=SEVERITY.__getitem__,
        default=Outcome.PUBLISH,
    )


def check_pictures(institution, post: Post) -> None:
    """Look at a held post's pictures for QR codes, and decide it with what its text
    showed: published, held for staff, or blocked (the rule's outcome). Once per post."""
    if not post.awaits_image_check or post.status != PostStatus.HELD:
        return
    group = post_group(post)
    codes = [text for image in post.images for text in images_.qr_codes_in(image.data)]
    post.images_checked_at = utcnow()
    before = post.findings
    post.findings = [*before, *({"rule": "qr", "excerpt": text[:60]} for text in codes)]
    outcome = _outcome(group, post.findings)
    post.status = STATUS_OF[outcome]
    db.session.flush()
    if post.status == PostStatus.PUBLISHED:
        _feed_changed(group)
    elif post.status == PostStatus.BLOCKED:
        _withdrawn(post)
    # What the text broke was logged when it was written; here, what the pictures showed.
    if post.status != PostStatus.PUBLISHED and codes:
        member = db.session.get(GroupMember, post.member_id)
        _log(group, post.status.value, None, member=member, post=post, reason=_rules_of(post))
        _strike(group, member, post.images_checked_at)


def broken_rules(post: Post) -> str:
    """What moderation found in the post, in words for its author and for staff (in the
    language of the page)."""
    return ", ".join(sorted({str(RULES[item["rule"]]) for item in post.findings}))


def _rules_of(post: Post) -> str:
    """The broken rules for the moderation log, by their keys ("link,phone"): a job writes
    them, and each reader sees them in their own language (`log_reason`)."""
    return RULE_PREFIX + ",".join(sorted({item["rule"] for item in post.findings}))


RULE_PREFIX = "rules:"
ROLE_PREFIX = "role:"  # the role before and after: "role:member,teacher"
STRIKES = "strikes"
VIP_LAPSED = "vip_lapsed"  # the family's VIP membership ended (a VIP club's removal)


def log_reason(reason: str | None) -> str:
    """A moderation log entry's reason as its reader reads it."""
    if reason and reason.startswith(RULE_PREFIX):
        keys = reason.removeprefix(RULE_PREFIX).split(",")
        return ", ".join(str(RULES[key]) for key in keys if key in RULES)
    if reason and reason.startswith(ROLE_PREFIX):
        roles = reason.removeprefix(ROLE_PREFIX).split(",")
        return " → ".join(str(MEMBER_ROLE_LABELS.get(role, role)) for role in roles)
    if reason == STRIKES:
        return str(_l("Broke the group's rules repeatedly"))
    if reason == VIP_LAPSED:
        return str(_l("Their VIP membership ended"))
    return reason or ""


def _recent_posts(member: GroupMember, now: datetime) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Post)
        .where(
            Post.member_id == member.id,
            Post.created_at > now - timedelta(seconds=FLOOD_SECONDS),
        )
    )


def _strike(group: Group, member: GroupMember, now: datetime) -> None:
    """One more broken rule; at the group's limit, muted for a while."""
    member.strikes += 1
    if group.strikes_to_mute and member.strikes >= group.strikes_to_mute:
        member.strikes = 0
        until = now + timedelta(hours=group.strike_mute_hours)
        mute_member(member, until, None, reason=STRIKES)


def close_group(institution, group: Group) -> bool:
    """Close the group now (if its closing time has not come already) and post its
    farewell announcement, once, to every member. True if it was closed here."""
    now = utcnow()
    if group.farewell_posted_at is not None:
        return False
    if group.closes_at is None or group.closes_at > now:
        group.closes_at = now
    group.farewell_posted_at = now
    if group.farewell:
        write_staff_post(institution, group, None, group.farewell, announcement=True, pinned=True)
    _feed_changed(group)
    db.session.flush()
    return True


def write_staff_post(
    institution,
    group: Group,
    user,
    body: str,
    *,
    reply_to: Post | None = None,
    announcement: bool = False,
    pinned: bool = False,
    publish_at: datetime | None = None,
) -> Post:
    """A post, reply or announcement by staff (`user`; None: the institution itself, as a
    farewell is): published as written (at `publish_at` for a scheduled announcement). A
    reply to a question answers it, and the family who wrote the post is told of any reply
    (a teacher's comment on a check-in, 点评); an announcement is sent to every member once
    (`notify_announcement`)."""
    now = utcnow()
    kind = PostKind.ANNOUNCEMENT if announcement else PostKind.POST
    post = Post(
        institution_id=institution.id,
        group_id=group.id,
        kind=PostKind.REPLY if reply_to is not None else kind,
        reply_to_id=reply_to.id if reply_to is not None else None,
        user_id=user.id if user is not None else None,
        body=body,
        is_pinned=pinned and announcement,
        publish_at=max(publish_at or now, now),
    )
    db.session.add(post)
    if reply_to is not None and reply_to.is_question and reply_to.answered_at is None:
        reply_to.answered_at = now
    db.session.flush()
    if announcement and post.publish_at <= now:
        enqueue_after_commit(
            "groups.notify_announcement", institution.id, post.id, job_id=f"announcement-{post.id}"
        )
    if reply_to is not None and reply_to.member is not None:
        _notify_reply(institution, group, reply_to, post)
    _feed_changed(group)
    return post


def _notify_reply(institution, group: Group, post: Post, reply: Post) -> None:
    link = external_url(
        "groups_public.group_page", institution_slug=institution.slug, code=group.code
    )
    notifications.notify_contact(
        institution,
        post.member.contact,
        "group_reply",
        {
            "group_title": group.title,
            "post": post.body,
            "reply": reply.body,
            "group_link": f"{link}#post-{post.id}",
        },
        dedupe_key=f"reply:{reply.id}",
    )


def notify_announcement(institution, post: Post) -> int:
    """Queue the announcement to every active member through their channels, once: the
    outbox's dedupe key (announcement and family) makes a second run queue nothing, also
    after Redis lost the job and the sweeper ran it again. Returns the families queued."""
    if post.kind != PostKind.ANNOUNCEMENT or post.status != PostStatus.PUBLISHED:
        return 0
    group = db.session.get(Group, post.group_id)
    members = db.session.scalars(
        select(GroupMember).where(
            GroupMember.group_id == group.id, GroupMember.status == MemberStatus.ACTIVE
        )
    ).all()
    link = external_url(
        "groups_public.group_page", institution_slug=institution.slug, code=group.code
    )
    for member in members:
        notifications.notify_contact(
            institution,
            member.contact,
            "group_announcement",
            {"group_title": group.title, "announcement": post.body, "group_link": link},
            dedupe_key=f"announcement:{post.id}:{member.contact_id}",
        )
    post.notified_at = utcnow()
    db.session.flush()
    return len(members)


# Told of every member post that moderation blocked after the fact (its pictures), or that
# staff rejected or removed: a domain that built something on the post (a camp's check-in)
# registers here, so groups never imports it.
WITHDRAWN_HANDLERS: list = []


def on_withdrawn(fn):
    """Register `fn(post)`, called in the same transaction when a post is withdrawn."""
    WITHDRAWN_HANDLERS.append(fn)
    return fn


def _withdrawn(post: Post) -> None:
    if post.member_id is None:
        return
    for handler in WITHDRAWN_HANDLERS:
        handler(post)


def review_post(post: Post, approve: bool, actor) -> None:
    """Staff decide on a held post: published, or removed."""
    if post.status != PostStatus.HELD:
        return
    post.status = PostStatus.PUBLISHED if approve else PostStatus.REMOVED
    _log(post_group(post), "approved" if approve else "rejected", actor, post=post)
    if not approve:
        _withdrawn(post)
    _feed_changed(post_group(post))


def remove_post(post: Post, actor, reason: str | None = None) -> None:
    if post.status == PostStatus.REMOVED:
        return
    post.status = PostStatus.REMOVED
    _log(post_group(post), "removed", actor, post=post, reason=reason)
    _withdrawn(post)
    _feed_changed(post_group(post))


def react(institution, post: Post, member: GroupMember) -> bool:
    """The member's 👍 on a published post, or taken back if they had given it: True if
    it is there now."""
    if not member.is_active or post.status != PostStatus.PUBLISHED:
        raise ServiceError(_l("You can no longer react to this post."), code="not_allowed")
    given = db.session.scalar(
        select(PostReaction).where(
            PostReaction.post_id == post.id, PostReaction.member_id == member.id
        )
    )
    if given is not None:
        db.session.delete(given)
        db.session.flush()
        return False
    db.insert_unless_exists(
        PostReaction,
        {"institution_id": institution.id, "post_id": post.id, "member_id": member.id},
        conflict=["post_id", "member_id"],
    )
    record_activity(institution, member, ActivityKind.REACTED)
    return True


def report_post(post: Post, member: GroupMember, reason: str | None = None) -> None:
    """A member reports a post: staff find it in their review queue (`keep_post` or
    `remove_post` decide it)."""
    _log(post_group(post), "reported", None, member=member, post=post, reason=reason)


def keep_post(post: Post, actor) -> None:
    """Staff looked at a reported post and leave it up."""
    _log(post_group(post), "kept", actor, post=post)


def post_group(post: Post) -> Group:
    return db.session.get(Group, post.group_id)


def _log(
    group: Group,
    action: str,
    actor,
    *,
    member: GroupMember | None = None,
    post: Post | None = None,
    reason: str | None = None,
) -> None:
    db.session.add(
        ModerationAction(
            institution_id=group.institution_id,
            group_id=group.id,
            member_id=member.id if member is not None else None,
            post_id=post.id if post is not None else None,
            user_id=actor.id if actor is not None else None,
            action=action,
            reason=(reason or None) and reason[:500],
        )
    )
    db.session.flush()


# --- activity -----------------------------------------------------------------------------------


def record_activity(institution, member: GroupMember, kind: ActivityKind) -> None:
    """That the member did `kind` today (the institution's day): one row at most."""
    db.insert_unless_exists(
        MemberActivity,
        {
            "institution_id": institution.id,
            "group_id": member.group_id,
            "member_id": member.id,
            "day": utcnow().astimezone(institution.zone).date(),
            "kind": kind,
        },
        conflict=["member_id", "day", "kind"],
    )


_VIEWS_WAITING = "group-views:waiting"


def _views_key(institution_id: int) -> str:
    return f"group-views:{institution_id}"


def seen(institution, member: GroupMember, newest_announcement_id: int) -> None:
    """The member had the group's page on their screen, with the announcements up to
    `newest_announcement_id`: kept in Redis (a GET never writes to the database) until
    `write_views` records the view and the reads. Best effort, as page views are."""
    day = utcnow().astimezone(institution.zone).date().isoformat()
    entry = f"{member.id}:{member.group_id}:{day}:{newest_announcement_id}"
    try:
        pipe = redis_connection.client.pipeline(transaction=False)
        pipe.sadd(_views_key(institution.id), entry).sadd(_VIEWS_WAITING, institution.id)
        pipe.execute()
    except redis.RedisError as error:
        log.warning("group view not recorded: %s", error)


def institutions_with_views() -> list[int]:
    return sorted(int(i) for i in redis_connection.client.smembers(_VIEWS_WAITING))


def take_views(institution) -> list[str]:
    """Take the views gathered in Redis for the institution: views gathered meanwhile
    start a new set, so none is taken twice."""
    client = redis_connection.client
    client.srem(_VIEWS_WAITING, institution.id)  # first: a view after this marks it again
    taking = f"{_views_key(institution.id)}:taking:{uuid.uuid4().hex}"
    try:
        client.rename(_views_key(institution.id), taking)
    except redis.ResponseError:  # no such key: nothing to take
        return []
    entries = sorted(entry.decode() for entry in client.smembers(taking))
    client.delete(taking)
    return entries


def give_back_views(institution, entries: list[str]) -> None:
    """Put taken views back (writing them failed), to be taken again."""
    if entries:
        client = redis_connection.client
        client.sadd(_views_key(institution.id), *entries)
        client.sadd(_VIEWS_WAITING, institution.id)


def write_views(institution, entries: list[str]) -> None:
    """Record taken views: a 'viewed' activity per member and day, and a read of every
    announcement the page showed (each once)."""
    dialect = db.session.get_bind().dialect.name
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for entry in entries:
        member, group, day, newest = entry.split(":")
        member_id, group_id, newest = int(member), int(group), int(newest)
        db.session.execute(
            insert_(MemberActivity)
            .values(
                institution_id=institution.id,
                group_id=group_id,
                member_id=member_id,
                day=datetime.fromisoformat(day).date(),
                kind=ActivityKind.VIEWED,
            )
            .on_conflict_do_nothing(index_elements=["member_id", "day", "kind"])
        )
        read_at = literal(utcnow(), type_=AnnouncementRead.__table__.c.read_at.type)
        shown = select(Post.institution_id, Post.id, literal(member_id), read_at).where(
            Post.group_id == group_id,
            Post.kind == PostKind.ANNOUNCEMENT,
            Post.status == PostStatus.PUBLISHED,
            Post.id <= newest,
        )
        db.session.execute(
            insert_(AnnouncementRead)
            .from_select(["institution_id", "post_id", "member_id", "read_at"], shown)
            .on_conflict_do_nothing(index_elements=["post_id", "member_id"])
        )
