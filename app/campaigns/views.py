from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user
from wtforms import SelectChoice

from app import pagecache
from app.accounts.models import MANAGERS
from app.campaigns import queries, services
from app.campaigns.forms import GroupBuyForm, JoinForm
from app.campaigns.models import (
    CAMPAIGN_STATUS_LABELS,
    MEMBER_STATUS_LABELS,
    RELEASE_REASON_LABELS,
    TEAM_STATUS_LABELS,
    CampaignStatus,
    GroupBuy,
    MemberStatus,
    ReleaseReason,
    Team,
    TeamMember,
    TeamStatus,
)
from app.contacts.models import SourceKind
from app.contacts.services import Touch
from app.courses import queries as course_queries
from app.db import utcnow
from app.errors import ServiceError, form_status, report
from app.extensions import db, limiter
from app.forms import ConfirmForm
from app.groups import queries as group_queries
from app.images import image_response, qr_response, update_cover
from app.localtime import from_local, to_local
from app.money import format_money, to_major, to_minor
from app.payments import checkout
from app.payments import services as payments
from app.payments.models import PAYMENT_STATUS_LABELS
from app.tenancy import (
    current_institution,
    get_or_404,
    public_blueprint,
    require_role,
    staff_blueprint,
)
from app.urls import external_url
from app.web import bot_answer, current_language

staff = staff_blueprint("campaigns", __name__)
public = public_blueprint("campaigns_public", __name__)
BLUEPRINTS = [staff, public]
LABELS = {
    "campaign_labels": CAMPAIGN_STATUS_LABELS,
    "team_labels": TEAM_STATUS_LABELS,
    "member_labels": MEMBER_STATUS_LABELS,
    "reason_labels": RELEASE_REASON_LABELS,
    "payment_labels": PAYMENT_STATUS_LABELS,
}
SESSION_KEY = "group_buy_members"  # the places this browser's family took


# --- campaigns (staff) -----------------------------------------------------------------------


@staff.get("/campaigns")
def campaign_list():
    group_buys = queries.all_group_buys(current_institution())
    return render_template(
        "campaigns/campaign_list.html",
        group_buys=group_buys,
        figures=queries.figures([gb.id for gb in group_buys]),
        now=utcnow(),
        **LABELS,
    )


def _save(group_buy: GroupBuy | None):
    institution = current_institution()
    form = GroupBuyForm(obj=group_buy) if group_buy else GroupBuyForm()
    form.course_id.choices = [
        SelectChoice(course.id, course.title) for course in course_queries.all_courses(institution)
    ]
    if request.method == "GET" and group_buy is not None:
        currency = group_buy.currency
        form.list_price.data = to_major(group_buy.list_price_amount, currency)
        form.group_price.data = to_major(group_buy.group_price_amount, currency)
        if group_buy.leader_price_amount is not None:
            form.leader_price.data = to_major(group_buy.leader_price_amount, currency)
        form.starts_at.data = to_local(group_buy.starts_at, institution.zone)
        form.ends_at.data = to_local(group_buy.ends_at, institution.zone)
    if form.validate_on_submit():
        currency = institution.currency
        try:
            saved = services.save_group_buy(
                institution,
                group_buy,
                title=form.title.data,
                description=form.description.data or None,
                course_id=form.course_id.data,
                list_price_amount=to_minor(form.list_price.data, currency),
                group_price_amount=to_minor(form.group_price.data, currency),
                leader_price_amount=(
                    to_minor(form.leader_price.data, currency)
                    if form.leader_price.data is not None
                    else None
                ),
                team_size=form.team_size.data,
                team_hours=form.team_hours.data,
                starts_at=from_local(form.starts_at.data, institution.zone),
                ends_at=from_local(form.ends_at.data, institution.zone),
                team_limit=form.team_limit.data,
                per_contact_limit=form.per_contact_limit.data,
            )
            update_cover(saved, remove=form.remove_cover.data, upload=form.cover.data)
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            flash(_("Campaign saved."), "success")
            return redirect(url_for(".campaign_detail", group_buy_id=saved.id))
    return render_template(
        "campaigns/campaign_form.html", form=form, group_buy=group_buy
    ), form_status(form)


@staff.route("/campaigns/new", methods=["GET", "POST"])
@require_role(*MANAGERS)
def campaign_new():
    return _save(None)


@staff.route("/campaigns/<int:group_buy_id>/edit", methods=["GET", "POST"])
@require_role(*MANAGERS)
def campaign_edit(group_buy_id: int):
    return _save(get_or_404(GroupBuy, group_buy_id))


def _share_url(group_buy: GroupBuy) -> str:
    return external_url(
        "campaigns_public.campaign_page",
        institution_slug=current_institution().slug,
        code=group_buy.code,
    )


@staff.get("/campaigns/<int:group_buy_id>")
def campaign_detail(group_buy_id: int):
    group_buy = get_or_404(GroupBuy, group_buy_id)
    return render_template(
        "campaigns/campaign_detail.html",
        group_buy=group_buy,
        share_url=_share_url(group_buy),
        figures=queries.figures([group_buy.id])[group_buy.id],
        teams=queries.teams_of(group_buy),
        confirm_form=ConfirmForm(),
        payments_ready=payments.accepts_payments(current_institution().id),
        now=utcnow(),
        **LABELS,
    )


@staff.post("/campaigns/<int:group_buy_id>/publish")
@require_role(*MANAGERS)
def campaign_publish(group_buy_id: int):
    group_buy = get_or_404(GroupBuy, group_buy_id)
    if ConfirmForm().validate_on_submit():
        try:
            services.publish_group_buy(current_institution(), group_buy, current_user)
        except ServiceError as error:
            report(error)
        else:
            db.session.commit()
            flash(_("The campaign is published."), "success")
    return redirect(url_for(".campaign_detail", group_buy_id=group_buy.id))


@staff.post("/campaigns/<int:group_buy_id>/end")
@require_role(*MANAGERS)
def campaign_end(group_buy_id: int):
    group_buy = get_or_404(GroupBuy, group_buy_id)
    if ConfirmForm().validate_on_submit():
        services.end_group_buy(current_institution(), group_buy, current_user)
        db.session.commit()
        flash(_("The campaign takes no new teams. Teams already forming keep their time."), "info")
    return redirect(url_for(".campaign_detail", group_buy_id=group_buy.id))


@staff.get("/campaigns/<int:group_buy_id>/preview")
def campaign_preview(group_buy_id: int):
    """The public page as parents will see it, with the join form switched off."""
    group_buy = get_or_404(GroupBuy, group_buy_id)
    return _render_campaign(group_buy, JoinForm(formdata=None), preview=True)


@staff.get("/campaigns/<int:group_buy_id>/qr.svg", defaults={"fmt": "svg"})
@staff.get("/campaigns/<int:group_buy_id>/qr.png", defaults={"fmt": "png"})
def campaign_qr(group_buy_id: int, fmt: str):
    group_buy = get_or_404(GroupBuy, group_buy_id)
    return qr_response(_share_url(group_buy), fmt, f"group-buy-{group_buy.code}")


@staff.post("/campaigns/<int:group_buy_id>/members/<int:member_id>/release")
@require_role(*MANAGERS)
def member_release(group_buy_id: int, member_id: int):
    group_buy = get_or_404(GroupBuy, group_buy_id)
    member = get_or_404(TeamMember, member_id)
    if member.team.group_buy_id != group_buy.id:
        abort(404)
    if ConfirmForm().validate_on_submit():
        try:
            services.release_member(current_institution(), member, current_user)
        except ServiceError as error:
            report(error)
        else:
            db.session.commit()
            flash(_("The hold is released: nothing is taken from the card."), "success")
    return redirect(
        url_for(".campaign_detail", group_buy_id=group_buy.id, _anchor=f"team-{member.team_id}")
    )


# --- public pages ----------------------------------------------------------------------------


def _join_key() -> str:
    return f"group-buy:{current_institution().id}:{request.view_args.get('code', '')}"


def _my_members(group_buy: GroupBuy) -> list[TeamMember]:
    return queries.members_by_codes(group_buy, session.get(SESSION_KEY, []))


def _remember(member: TeamMember) -> None:
    codes = [code for code in session.get(SESSION_KEY, []) if code != member.code]
    session[SESSION_KEY] = [*codes, member.code][-20:]


def _join_form() -> JoinForm:
    return checkout.prepare(JoinForm())


def _join(group_buy: GroupBuy, team: Team | None, form: JoinForm):
    """Open (team=None) or join a team: write the place, commit it, then hold the money.
    Returns a response, or None to show the form again with its errors."""
    institution = current_institution()
    if form.is_bot():
        return bot_answer()
    details = form.details(consent_text=_consent_text(institution), locale=current_language())
    touch = Touch.from_request(SourceKind.CAMPAIGN, group_buy.code, request.args, request.referrer)
    try:
        member = services.start_join(institution, group_buy, team, details, touch)
    except ServiceError as error:
        report(error, form)
        return None
    _remember(member)
    team_page_url = url_for(".team_page", code=group_buy.code, team_code=member.team.code)
    # The place and its pending payment are committed before Stripe is called: a crash in
    # between leaves a row that its deadline job finishes, never a hold nobody knows about.
    page = checkout.commit_then_charge(
        member.payment, card=form.card(), title=group_buy.title, next_path=team_page_url
    )
    if page is not None:  # the Payment Element: the parent comes back to the team page
        return redirect(page)
    db.session.refresh(member)
    if member.status in (MemberStatus.AUTHORISED, MemberStatus.CAPTURED):
        flash(_("You are in the team."), "success")
    elif member.release_reason == ReleaseReason.TEAM_FULL:
        flash(
            _(
                "Another family took the last seat a moment before you. Your card hold is "
                "released, so nothing is taken. You can open a team of your own."
            ),
            "error",
        )
        return redirect(url_for(".campaign_page", code=group_buy.code, _anchor="open"))
    elif member.status == MemberStatus.RELEASED:
        flash(
            _("This team's time ran out. Your card hold is released, so nothing is taken."), "error"
        )
        return redirect(url_for(".campaign_page", code=group_buy.code, _anchor="open"))
    else:
        flash(
            _(
                "The payment did not go through: %(reason)s Nothing is taken from your card.",
                reason=member.payment.failure_text,
            ),
            "error",
        )
    return redirect(team_page_url)


def _consent_text(institution) -> str:
    return _(
        "I agree that %(name)s may contact me about this group buy and keep my details for it.",
        name=institution.name,
    )


def _public_group_buy(code: str) -> GroupBuy:
    group_buy = queries.group_buy_by_code(current_institution(), code)
    if group_buy is None or group_buy.status == CampaignStatus.DRAFT:
        abort(404)
    return group_buy


def _render_campaign(group_buy: GroupBuy, form: JoinForm, preview: bool = False):
    now = utcnow()
    teams = queries.joinable_teams(group_buy, now)
    pagecache.fresh_until(group_buy.next_change(now))
    for team in teams:
        pagecache.fresh_until(team.expires_at)
    return render_template(
        "campaigns/public_campaign.html",
        group_buy=group_buy,
        teams=teams,
        my_members=[] if preview else _my_members(group_buy),
        form=form,
        consent_text=_consent_text(current_institution()),
        preview=preview,
        now=now,
        **LABELS,
    ), form_status(form)


def _join_limits(view):
    """Joins are limited per address and per campaign (the public form limits' pattern)."""
    per_campaign = limiter.limit(
        lambda: current_app.config["FORM_LIMIT_PER_FORM"], methods=["POST"], key_func=_join_key
    )
    per_ip = limiter.limit(lambda: current_app.config["JOIN_LIMIT_PER_IP"], methods=["POST"])
    return per_ip(per_campaign(view))


def _view_of(_visit, code: str, team_code: str | None = None):
    """A view of the campaign's page or one of its teams' counts for the campaign."""
    return services.view_of(code)


def _has_places() -> bool:
    """This browser's family holds places in teams, shown on the campaign's pages."""
    return bool(session.get(SESSION_KEY))


@public.route("/gb/<code>", methods=["GET", "POST"])
@_join_limits
@pagecache.cached(lambda code: [("group_buy", code)], count=_view_of, personal=_has_places)
def campaign_page(code: str):
    """The campaign: price, open teams to join, and opening a team of one's own."""
    group_buy = _public_group_buy(code)
    form = _join_form()
    if form.validate_on_submit():
        response = _join(group_buy, None, form)
        if response is not None:
            return response
    return _render_campaign(group_buy, form)


@public.route("/gb/<code>/t/<team_code>", methods=["GET", "POST"])
@_join_limits
@pagecache.cached(
    lambda code, team_code: [("team", team_code), ("group_buy", code)],
    count=_view_of,
    personal=_has_places,
)
def team_page(code: str, team_code: str):
    """One team: its members (names masked), seats left, its countdown, and joining."""
    return _render_team(code, team_code, _join_form())


def _render_team(code: str, team_code: str, form: JoinForm):
    group_buy = _public_group_buy(code)
    team = queries.team_by_code(group_buy, team_code) or abort(404)
    if form.validate_on_submit():
        response = _join(group_buy, team, form)
        if response is not None:
            return response
    now = utcnow()
    pagecache.fresh_until(group_buy.next_change(now))
    if team.status == TeamStatus.FORMING:
        pagecache.fresh_until(team.expires_at)
    mine = [m for m in _my_members(group_buy) if m.team_id == team.id]
    mine = mine[-1] if mine else None
    # The class group the team's success put the family in (or one to join): theirs only,
    # on a page rendered for them (a visitor with places is never served a kept page).
    group_offer = None
    if mine is not None and mine.status == MemberStatus.CAPTURED:
        group_offer = group_queries.offer_for_course(group_buy.course, mine.contact, now)
    return render_template(
        "campaigns/public_team.html",
        group_buy=group_buy,
        team=team,
        members=[
            m for m in team.members if m.status in (MemberStatus.AUTHORISED, MemberStatus.CAPTURED)
        ],
        mine=mine,
        group_offer=group_offer,
        share_url=services.team_url(team),
        form=form,
        consent_text=_consent_text(current_institution()),
        now=now,
        price=format_money(group_buy.group_price_amount, group_buy.currency),
        **LABELS,
    ), form_status(form)


@public.get("/gb/<code>/t/<team_code>/qr.svg")
def team_qr(code: str, team_code: str):
    group_buy = _public_group_buy(code)
    team = queries.team_by_code(group_buy, team_code) or abort(404)
    return qr_response(services.team_url(team), "svg", f"team-{team.code}")


@public.get("/gb/<code>/cover")
def campaign_cover(code: str):
    group_buy = queries.group_buy_by_code(current_institution(), code)
    if group_buy is None or not group_buy.has_cover:
        abort(404)
    return image_response(group_buy.cover, group_buy.cover_content_type, group_buy.cover_updated_at)
