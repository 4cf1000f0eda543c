"""Groups: staff pages under /staff/<slug>/groups, and the families' pages: joining by an
invite (/<slug>/j/<code>) and the group itself (/<slug>/g/<code>), whose open page asks
for updates every few seconds (`feed_updates`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import timedelta

from flask import (
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from wtforms import SelectChoice

from app import pagecache, sharing
from app.accounts.models import MANAGERS
from app.camps import queries as camp_queries
from app.courses import queries as course_queries
from app.db import utcnow
from app.errors import ServiceError, form_status, report
from app.extensions import db, limiter, limits_reads
from app.forms import ConfirmForm
from app.groups import queries, services
from app.groups.forms import (
    AnnouncementForm,
    GroupForm,
    InviteForm,
    JoinForm,
    MuteForm,
    PostForm,
    ReplyForm,
    RoleForm,
)
from app.groups.models import (
    ACTION_LABELS,
    GROUP_KIND_LABELS,
    JOIN_VIA_LABELS,
    MEMBER_ROLE_LABELS,
    MEMBER_STATUS_LABELS,
    RULES,
    Group,
    GroupInvite,
    GroupKind,
    GroupMember,
    JoinVia,
    MemberRole,
    MemberStatus,
    PostKind,
    PostStatus,
)
from app.images import qr_response
from app.localtime import from_local, to_local
from app.loyalty import queries as loyalty_queries
from app.memberships import queries as vip
from app.portal import services as portal
from app.tenancy import (
    current_institution,
    get_or_404,
    public_blueprint,
    require_role,
    staff_blueprint,
)
from app.urls import external_url
from app.web import current_language

staff = staff_blueprint("groups", __name__)
public = public_blueprint("groups_public", __name__)
BLUEPRINTS = [staff, public]
POLL_SECONDS = 3  # an open group page asks for updates this often


# --- staff: groups -----------------------------------------------------------------------------


@staff.get("/groups")
def group_list():
    institution = current_institution()
    return render_template(
        "groups/group_list.html",
        groups=queries.all_groups(institution),
        counts=queries.member_counts(institution),
        week=queries.week_figures(institution, utcnow().astimezone(institution.zone).date()),
        kind_labels=GROUP_KIND_LABELS,
        now=utcnow(),
    )


@staff.route("/groups/new", methods=["GET", "POST"])
@require_role(*MANAGERS)
def group_new():
    return _save_group(None)


@staff.route("/groups/<int:group_id>/edit", methods=["GET", "POST"])
@require_role(*MANAGERS)
def group_edit(group_id: int):
    return _save_group(get_or_404(Group, group_id))


def _save_group(group: Group | None):
    institution = current_institution()
    form = GroupForm(obj=group) if group else GroupForm()
    form.course_id.choices = [SelectChoice(0, _("None"))] + [
        SelectChoice(course.id, course.title) for course in course_queries.all_courses(institution)
    ]
    if request.method == "GET" and group is not None:
        form.course_id.data = group.course_id or 0
        form.allowed_domains.data = "\n".join(group.allowed_domains)
        form.keywords.data = "\n".join(group.keywords)
        form.closes_at.data = to_local(group.closes_at, institution.zone)
    if form.validate_on_submit():
        settings = form.settings()
        settings["closes_at"] = from_local(form.closes_at.data, institution.zone)
        if group is None:
            group = services.create_group(institution, **settings)
            services.create_invite(institution, group, label=_("Group link"))
        else:
            services.update_group(group, **settings)
        db.session.commit()
        flash(_("Group saved."), "success")
        return redirect(url_for(".group_detail", group_id=group.id))
    return render_template("groups/group_form.html", form=form, group=group), form_status(form)


@staff.get("/groups/<int:group_id>")
def group_detail(group_id: int):
    group = get_or_404(Group, group_id)
    now = utcnow()
    posts, replies = queries.feed(group, now)
    members = queries.members(group)
    return render_template(
        "groups/group_detail.html",
        group=group,
        posts=posts,
        replies=replies,
        held=queries.held_posts(group),
        reported=queries.reported_posts(group),
        reads=queries.read_counts(group),
        readers=queries.readers,
        last_active=queries.last_active(group),
        questions=queries.unanswered_questions(group),
        members=members,
        member_names={m.id: m.contact.parent_name for m in members},
        vip_ids=_vip_ids(posts, replies, members),
        invites=queries.invites(group),
        camps=camp_queries.group_camps(group),
        log=queries.moderation_log(group),
        group_url=_group_url(group),
        invite_url=_invite_url,
        kind_labels=GROUP_KIND_LABELS,
        role_labels=MEMBER_ROLE_LABELS,
        status_labels=MEMBER_STATUS_LABELS,
        via_labels=JOIN_VIA_LABELS,
        rules=RULES,
        broken_rules=services.broken_rules,
        log_reason=services.log_reason,
        action_labels=ACTION_LABELS,
        announcement_form=AnnouncementForm(formdata=None),
        invite_form=InviteForm(formdata=None),
        reply_form=ReplyForm(formdata=None),
        mute_form=MuteForm(formdata=None),
        role_form=RoleForm(formdata=None),
        confirm_form=ConfirmForm(),
        picture_url=lambda image: url_for(".staff_picture", group_id=group.id, image_id=image.id),
        now=now,
    )


@staff.get("/groups/<int:group_id>/pictures/<int:image_id>")
def staff_picture(group_id: int, image_id: int):
    """A picture of a post, for staff (a held post's too: they review it)."""
    group = get_or_404(Group, group_id)
    return _picture_response(queries.picture_in(group, image_id) or abort(404))


def _picture_response(image):
    response = current_app.response_class(image.data, mimetype=image.content_type)
    response.headers["Cache-Control"] = "private, max-age=86400"
    return response


def _group_url(group: Group) -> str:
    return external_url(
        "groups_public.group_page", institution_slug=current_institution().slug, code=group.code
    )


def _invite_url(invite: GroupInvite, via: str | None = None) -> str:
    return external_url(
        "groups_public.join",
        institution_slug=current_institution().slug,
        code=invite.code,
        **({"via": via} if via else {}),
    )


@staff.post("/groups/<int:group_id>/invites")
@require_role(*MANAGERS)
def invite_new(group_id: int):
    group = get_or_404(Group, group_id)
    form = InviteForm()
    if form.validate_on_submit():
        expires_at = from_local(form.expires_at.data, current_institution().zone)
        services.create_invite(
            current_institution(), group, form.label.data or None, expires_at, form.use_cap.data
        )
        db.session.commit()
        flash(_("Invitation link created."), "success")
    else:
        flash(_("The invitation was not created: check its expiry and uses."), "error")
    return redirect(url_for(".group_detail", group_id=group.id, _anchor="invites"))


@staff.post("/groups/<int:group_id>/invites/<int:invite_id>/revoke")
@require_role(*MANAGERS)
def invite_revoke(group_id: int, invite_id: int):
    invite = _invite_of(group_id, invite_id)
    if ConfirmForm().validate_on_submit():
        services.revoke_invite(invite)
        db.session.commit()
        flash(_("The link no longer works."), "success")
    return redirect(url_for(".group_detail", group_id=group_id, _anchor="invites"))


@staff.get("/groups/<int:group_id>/invites/<int:invite_id>/qr.svg", defaults={"fmt": "svg"})
@staff.get("/groups/<int:group_id>/invites/<int:invite_id>/qr.png", defaults={"fmt": "png"})
def invite_qr(group_id: int, invite_id: int, fmt: str):
    invite = _invite_of(group_id, invite_id)
    return qr_response(_invite_url(invite, via="qr"), fmt, f"group-{invite.code}")


def _invite_of(group_id: int, invite_id: int) -> GroupInvite:
    invite = get_or_404(GroupInvite, invite_id)
    if invite.group_id != group_id:
        abort(404)
    return invite


# --- staff: the feed and moderation ------------------------------------------------------------


@staff.post("/groups/<int:group_id>/announcements")
@require_role(*MANAGERS)
def announcement_new(group_id: int):
    group = get_or_404(Group, group_id)
    form = AnnouncementForm()
    if form.validate_on_submit():
        services.write_staff_post(
            current_institution(),
            group,
            current_user,
            form.body.data,
            announcement=True,
            pinned=form.pinned.data,
            publish_at=from_local(form.publish_at.data, current_institution().zone),
        )
        db.session.commit()
        flash(_("Announcement published. Every member is notified once."), "success")
    else:
        flash(_("The announcement was not published: write its text."), "error")
    return redirect(url_for(".group_detail", group_id=group.id))


@staff.post("/groups/<int:group_id>/posts/<int:post_id>/reply")
def staff_reply(group_id: int, post_id: int):
    group = get_or_404(Group, group_id)
    post = queries.post_in(group, post_id) or abort(404)
    form = ReplyForm()
    if form.validate_on_submit():
        services.write_staff_post(
            current_institution(), group, current_user, form.body.data, reply_to=post
        )
        db.session.commit()
        flash(_("Reply posted."), "success")
    return redirect(url_for(".group_detail", group_id=group.id))


@staff.post("/groups/<int:group_id>/posts/<int:post_id>/approve", defaults={"action": "approve"})
@staff.post("/groups/<int:group_id>/posts/<int:post_id>/reject", defaults={"action": "reject"})
@staff.post("/groups/<int:group_id>/posts/<int:post_id>/remove", defaults={"action": "remove"})
@staff.post("/groups/<int:group_id>/posts/<int:post_id>/keep", defaults={"action": "keep"})
def moderate_post(group_id: int, post_id: int, action: str):
    group = get_or_404(Group, group_id)
    post = queries.post_in(group, post_id) or abort(404)
    if ConfirmForm().validate_on_submit():
        if action == "remove":
            services.remove_post(post, current_user)
        elif action == "keep":
            services.keep_post(post, current_user)
        else:
            services.review_post(post, action == "approve", current_user)
        db.session.commit()
    return redirect(url_for(".group_detail", group_id=group.id))


@staff.post(
    "/groups/<int:group_id>/members/<int:group_member_id>/approve", defaults={"action": "approve"}
)
@staff.post(
    "/groups/<int:group_id>/members/<int:group_member_id>/remove", defaults={"action": "remove"}
)
@staff.post("/groups/<int:group_id>/members/<int:group_member_id>/ban", defaults={"action": "ban"})
def moderate_member(group_id: int, group_member_id: int, action: str):
    member = _member_of(group_id, group_member_id)
    if ConfirmForm().validate_on_submit():
        if action == "approve":
            services.approve_member(member, current_user)
        else:
            services.remove_member(member, current_user, ban=action == "ban")
        db.session.commit()
    return redirect(url_for(".group_detail", group_id=group_id, _anchor="members"))


@staff.post("/groups/<int:group_id>/members/<int:group_member_id>/mute")
def mute_member(group_id: int, group_member_id: int):
    member = _member_of(group_id, group_member_id)
    form = MuteForm()
    if form.validate_on_submit():
        services.mute_member(member, utcnow() + timedelta(hours=form.hours.data), current_user)
        db.session.commit()
        flash(_("Member muted."), "success")
    return redirect(url_for(".group_detail", group_id=group_id, _anchor="members"))


@staff.post("/groups/<int:group_id>/members/<int:group_member_id>/role")
def member_role(group_id: int, group_member_id: int):
    member = _member_of(group_id, group_member_id)
    form = RoleForm()
    if form.validate_on_submit():
        try:
            services.set_member_role(
                current_institution(), member, MemberRole(form.role.data), current_user
            )
        except ServiceError as error:
            report(error)
        else:
            db.session.commit()
            flash(_("Role changed."), "success")
    else:
        flash(_("The role was not changed: choose one of the roles."), "error")
    return redirect(url_for(".group_detail", group_id=group_id, _anchor="members"))


def _member_of(group_id: int, group_member_id: int) -> GroupMember:
    member = get_or_404(GroupMember, group_member_id)
    if member.group_id != group_id:
        abort(404)
    return member


# --- families: joining ------------------------------------------------------------------------


def _family():
    return portal.family_signed_in(current_institution(), session)


@public.route("/j/<code>", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["REGISTER_LIMIT_PER_IP"], methods=["POST"])
def join(code: str):
    """An invitation: the group's rules to accept, then the group. A family not signed in
    to their page is asked to (no password: a one-time link to their phone) and comes
    back here."""
    institution = current_institution()
    invite = queries.invite_by_code(institution, code) or abort(404)
    group = invite.group
    contact = _family()
    member = queries.member_of(group, contact)
    if member is not None and member.is_active:
        return redirect(url_for(".group_page", code=group.code))
    if contact is None:
        portal.come_back_after_sign_in(session, request.full_path.rstrip("?"))
    form = JoinForm()
    error = None
    if not invite.is_usable(utcnow()):
        error = services.INVITE_UNUSABLE
    elif contact is not None and form.validate_on_submit():
        try:
            member = services.join_group(institution, invite, contact, _join_source(group, contact))
        except ServiceError as exc:
            db.session.rollback()
            error = exc.message  # shown on the page (not flashed as well)
        else:
            db.session.commit()
            if member.status == MemberStatus.PENDING:
                flash(_("Thank you! The group's staff will let you in shortly."), "success")
            return redirect(url_for(".group_page", code=group.code))
    status = 422 if form.errors or error else 200
    return render_template(
        "groups/join.html",
        group=group,
        invite=invite,
        contact=contact,
        form=form,
        error=error,
        # A VIP club says so before its rules, with the way to become a VIP.
        needs_vip=group.kind == GroupKind.VIP
        and contact is not None
        and not vip.is_vip(contact, utcnow()),
    ), status


@public.get("/j/<code>/poster.png")
@limits_reads
@limiter.limit(lambda: current_app.config["POSTER_LIMIT_PER_IP"])
def invite_poster(code: str):
    """An invitation's share poster (app.sharing): how many families are in the group."""
    institution = current_institution()
    invite = queries.invite_by_code(institution, code) or abort(404)
    if not invite.is_usable(utcnow()):
        abort(404)
    members = queries.member_counts(institution).get(invite.group_id, 0)
    return sharing.poster_response(
        institution,
        link=_invite_url(invite, via="qr"),
        family_by_ref=loyalty_queries.contact_by_referral_code,
        title=invite.group.title,
        subtitle=invite.group.description,
        badge=ngettext("%(num)s family has joined", "%(num)s families have joined", members)
        if members
        else None,
    )


def _join_source(group: Group, contact) -> JoinVia:
    """How the family came: a member's link (it carries their referral code, `ref`), the
    QR code, or the link."""
    code = request.args.get("ref")
    if code:
        referrer = loyalty_queries.contact_by_referral_code(group.institution_id, code[:64])
        member = queries.member_of(group, referrer) if referrer is not None else None
        if member is not None and member.is_active and referrer.id != contact.id:
            return JoinVia.REFERRAL
    return JoinVia.QR if request.args.get("via") == "qr" else JoinVia.LINK


# --- families: the group -----------------------------------------------------------------------


def _group_and_member(code: str):
    """The group and the signed-in family's membership of it: a family that is not an
    active member is sent to sign in or gets a 404 (nothing of the group is shown)."""
    group = queries.group_by_code(current_institution(), code) or abort(404)
    member = queries.member_of(group, _family())
    return group, member


@public.get("/g/<code>")
def group_page(code: str):
    group, member = _group_and_member(code)
    if member is None or member.status not in (MemberStatus.ACTIVE, MemberStatus.PENDING):
        if _family() is None:
            portal.come_back_after_sign_in(session, request.path)
            return redirect(url_for("portal.page"))
        open_to_all = group.kind == GroupKind.OPEN and member is None  # never in it yet
        invite = queries.open_invite(group, utcnow()) if open_to_all else None
        if invite is None:
            abort(404)  # nothing of the group for someone who is not in it
        return redirect(url_for(".join", code=invite.code))
    now = utcnow()
    # The version first: a post written meanwhile is then fetched by the page's next ask.
    version = services.feed_version(group.institution_id, group.code) or 0
    posts, replies = queries.feed(group, now, viewer=member)
    likes, liked = queries.reactions(posts, member)
    if member.is_active:
        announcements = [p.id for p in posts if p.kind == PostKind.ANNOUNCEMENT]
        services.seen(current_institution(), member, max(announcements, default=0))
    return render_template(
        "groups/group_page.html",
        group=group,
        member=member,
        posts=posts,
        replies=replies,
        version=version,
        last_id=max([p.id for p in posts] + [r.id for rs in replies.values() for r in rs] + [0]),
        post_form=PostForm(formdata=None),
        reply_form=ReplyForm(formdata=None),
        picture_url=_member_picture_url,
        confirm_form=ConfirmForm(),
        likes=likes,
        liked=liked,
        vip_ids=_vip_ids(posts, replies),
        poll_seconds=POLL_SECONDS,
        camps=camp_queries.group_camps(group),
        today=now.astimezone(current_institution().zone).date(),
        now=now,
    )


@public.get("/g/<code>/updates")
@pagecache.unchanged_since(services.FEED, lambda code: code)
def feed_updates(code: str):
    """What changed on an open group page since it last asked. While the group's version
    is the one the page has (sent back as If-None-Match), the answer is a 304 (in front of
    Flask: app.pagecache): hundreds of open pages ask every few seconds. Otherwise the new
    posts and replies after `after`, rendered, for a member only."""
    institution = current_institution()
    version = services.feed_version(institution.id, code)
    if version is not None and request.headers.get("If-None-Match") == pagecache.etag(version):
        return "", 304, {"ETag": pagecache.etag(version), "Cache-Control": "no-store"}
    group, member = _group_and_member(code)
    if member is None or not member.is_active:
        return jsonify(error="not_member"), 403
    after = request.args.get("after", 0, type=int)
    response = jsonify(items=_items_after(group, version, after))
    response.headers["ETag"] = pagecache.etag(version)
    response.headers["Cache-Control"] = "no-store"
    return response


# What an update sends, by (institution, group, version, after): every member asking after
# the same change with the same newest post gets the same items (published ones only: an
# author sees their own held post on the page their post returns to).
_RENDERED: OrderedDict[tuple, list[dict]] = OrderedDict()
_RENDERED_MOST = 256
_rendering = threading.Lock()


def _items_after(group: Group, version: int | None, after: int) -> list[dict]:
    key = (group.institution_id, group.code, version, after, current_language())
    items = _RENDERED.get(key) if version is not None else None
    if items is None:
        posts, replies = queries.feed(group, utcnow(), after=after)
        vip_ids = _vip_ids(posts, replies)
        items = [
            {
                "id": post.id,
                "reply_to": post.reply_to_id,
                "html": render_template(
                    "groups/_post.html",
                    post=post,
                    replies={},
                    member=None,
                    group=group,
                    picture_url=_member_picture_url,
                    vip_ids=vip_ids,
                ),
            }
            for post in sorted([*posts, *(r for rs in replies.values() for r in rs)], key=_by_id)
        ]
        with _rendering:
            _RENDERED[key] = items
            while len(_RENDERED) > _RENDERED_MOST:
                _RENDERED.popitem(last=False)
    return items


def _vip_ids(posts, replies, members=()) -> set[int]:
    """The VIP families among the authors (and members) a page shows, for their badge: one
    query for the page."""
    items = [*posts, *(reply for rs in replies.values() for reply in rs)]
    contact_ids = {item.member.contact_id for item in items if item.member is not None}
    contact_ids.update(member.contact_id for member in members)
    return vip.vip_contact_ids(contact_ids, utcnow())


def _member_picture_url(image) -> str:
    return url_for(".picture", code=request.view_args["code"], image_id=image.id)


def _by_id(post) -> int:
    return post.id


@public.post("/g/<code>/posts")
@limiter.limit("30 per minute")
def member_post(code: str):
    group, member = _group_and_member(code)
    if member is None or not member.is_active:
        abort(404)
    form = PostForm()
    return _write(group, member, form, form.is_question.data, form.uploaded_pictures())


@public.post("/g/<code>/posts/<int:post_id>/replies")
@limiter.limit("30 per minute")
def member_reply(code: str, post_id: int):
    group, member = _group_and_member(code)
    if member is None or not member.is_active:
        abort(404)
    post = queries.post_in(group, post_id)
    if post is None or post.status != PostStatus.PUBLISHED:
        abort(404)
    return _write(group, member, ReplyForm(), False, reply_to=post)


def _write(group, member, form, is_question: bool, pictures=(), reply_to=None):
    if not form.validate_on_submit():
        flash(_("Not posted: %(error)s", error=_first_error(form)), "error")
        return redirect(url_for(".group_page", code=group.code))
    try:
        post = services.write_post(
            current_institution(),
            group,
            member,
            form.body.data,
            reply_to=reply_to,
            is_question=is_question,
            pictures=list(pictures),
        )
    except ServiceError as error:
        report(error)
        return redirect(url_for(".group_page", code=group.code))
    db.session.commit()
    if post.status == PostStatus.BLOCKED:
        reasons = services.broken_rules(post)
        flash(_("Not posted: this group does not allow %(reasons)s.", reasons=reasons), "error")
    elif post.awaits_image_check and post.status == PostStatus.HELD and not post.findings:
        flash(_("Posted. It shows to everyone once its pictures are checked."), "info")
    elif post.status == PostStatus.HELD:
        flash(_("Posted. It will show once the group's staff have looked at it."), "info")
    return redirect(url_for(".group_page", code=group.code, _anchor=f"post-{post.id}"))


def _first_error(form) -> str:
    for errors in form.errors.values():
        if errors:
            return str(errors[0])
    return ""


@public.get("/g/<code>/pictures/<int:image_id>")
def picture(code: str, image_id: int):
    """A picture of a post, for the group's members (and its author while it waits)."""
    group, member = _group_and_member(code)
    if member is None or not member.is_active:
        abort(404)
    image = queries.picture_in(group, image_id) or abort(404)
    post = queries.post_in(group, image.post_id)
    if post.status != PostStatus.PUBLISHED and post.member_id != member.id:
        abort(404)
    return _picture_response(image)


@public.post("/g/<code>/posts/<int:post_id>/react")
@limiter.limit("60 per minute")
def react(code: str, post_id: int):
    group, member = _group_and_member(code)
    if member is None or not member.is_active:
        abort(404)
    post = queries.post_in(group, post_id) or abort(404)
    if ConfirmForm().validate_on_submit():
        try:
            services.react(current_institution(), post, member)
        except ServiceError as error:
            report(error)
        else:
            db.session.commit()
    return redirect(url_for(".group_page", code=group.code, _anchor=f"post-{post.id}"))


@public.post("/g/<code>/posts/<int:post_id>/report")
@limiter.limit("10 per minute")
def report_post(code: str, post_id: int):
    group, member = _group_and_member(code)
    if member is None or not member.is_active:
        abort(404)
    post = queries.post_in(group, post_id) or abort(404)
    if ConfirmForm().validate_on_submit():
        services.report_post(post, member)
        db.session.commit()
        flash(_("Thank you. The group's staff will look at it."), "success")
    return redirect(url_for(".group_page", code=group.code))
