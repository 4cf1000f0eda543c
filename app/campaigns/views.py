from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import redis
from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import format_datetime, ngettext
from flask_babel import gettext as _
from flask_login import current_user
from wtforms import SelectChoice

from app import pagecache, sharing
from app.accounts.models import MANAGERS
from app.campaigns import queries, services, stock
from app.campaigns.forms import (
    FlashBuyForm,
    FlashPayForm,
    FlashRemindForm,
    FlashSaleForm,
    GroupBuyForm,
    JoinForm,
)
from app.campaigns.models import (
    ACTIVE_FLASH_ORDER,
    CAMPAIGN_STATUS_LABELS,
    FLASH_ORDER_STATUS_LABELS,
    FLASH_PHASE_LABELS,
    MEMBER_STATUS_LABELS,
    RELEASE_REASON_LABELS,
    TEAM_STATUS_LABELS,
    CampaignStatus,
    FlashOrder,
    FlashOrderStatus,
    FlashPhase,
    FlashSale,
    FlashTerms,
    GroupBuy,
    MemberStatus,
    ReleaseReason,
    Team,
    TeamMember,
    TeamStatus,
)
from app.contacts.models import SourceKind
from app.contacts.services import ContactDetails, Touch, find_or_create_contact
from app.courses import queries as course_queries
from app.csvfile import csv_response
from app.db import utcnow
from app.errors import ServiceError, form_status, report
from app.extensions import db, limiter, limits_reads
from app.forms import ConfirmForm
from app.groups import queries as group_queries
from app.images import image_response, qr_response, update_picture
from app.localtime import from_local, to_local
from app.loyalty import queries as loyalty_queries
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
                is_charged_at_once=form.is_charged_at_once.data,
            )
            update_picture(saved, remove=form.remove_cover.data, upload=form.cover.data)
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
        member.payment,
        card=form.card(),
        title=group_buy.title,
        next_path=team_page_url,
        note=_pay_now_note(group_buy),
    )
    if page is not None:  # the Payment Element: the parent comes back to the team page
        return redirect(page)
    db.session.refresh(member)
    if member.has_seat and team is None:
        flash(
            ngettext(
                "Your team is open! Share its link: %(num)s more family is needed.",
                "Your team is open! Share its link: %(num)s more families are needed.",
                group_buy.team_size - 1,  # the leader is its first member
            ),
            "success",
        )
    elif member.has_seat:
        flash(_("You are in the team."), "success")
    elif member.status == MemberStatus.REFUNDED:  # paid at once, the team filled or closed
        if member.release_reason == ReleaseReason.TEAM_FULL:
            message = _(
                "Another family took the last seat a moment before you. Your payment is "
                "refunded in full. You can open a team of your own."
            )
        else:
            message = _("This team's time ran out. Your payment is refunded in full.")
        flash(message, "error")
        return redirect(url_for(".campaign_page", code=group_buy.code, _anchor="open"))
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


def _pay_now_note(group_buy: GroupBuy) -> str | None:
    """What the checkout page says of a campaign that charges at once (a hold says its own)."""
    if not group_buy.is_charged_at_once:
        return None
    return _("You pay now; if the team does not fill, the full amount is refunded automatically.")


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
    group_offer = enrolment = None
    if mine is not None and mine.status == MemberStatus.CAPTURED:
        group_offer = group_queries.offer_for_course(group_buy.course, mine.contact, now)
        enrolment = course_queries.enrolment_by_id(mine.enrolment_id)
    return render_template(
        "campaigns/public_team.html",
        group_buy=group_buy,
        team=team,
        members=queries.seated_members(team),
        mine=mine,
        group_offer=group_offer,
        enrolment=enrolment,
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
    link = sharing.with_ref(services.team_url(team), request.args.get("ref"))
    return qr_response(link, "svg", f"team-{team.code}")


def _limit_posters(view):
    """A poster is drawn per request (then kept): limited per address, GETs included."""
    return limits_reads(limiter.limit(lambda: current_app.config["POSTER_LIMIT_PER_IP"])(view))


def _group_buy_poster(group_buy: GroupBuy, link: str, badge: str | None):
    return sharing.poster_response(
        current_institution(),
        link=link,
        family_by_ref=loyalty_queries.contact_by_referral_code,
        title=group_buy.title,
        subtitle=" · ".join(
            [
                ngettext("Team of %(num)s", "Team of %(num)s", group_buy.team_size),
                group_buy.course.title,
            ]
        ),
        price_label=_("Group price"),
        price=format_money(group_buy.group_price_amount, group_buy.currency),
        list_price=format_money(group_buy.list_price_amount, group_buy.currency),
        badge=badge,
        cover_of=group_buy,
    )


@public.get("/gb/<code>/poster.png")
@_limit_posters
def campaign_poster(code: str):
    """The campaign's share poster (app.sharing), its QR code carrying the `ref` given."""
    group_buy = _public_group_buy(code)
    now = utcnow()
    if group_buy.has_started(now) and not group_buy.is_open(now):
        badge = _("This group buy has ended.")
    elif group_buy.seats_sold:
        badge = ngettext("%(num)s seat sold", "%(num)s seats sold", group_buy.seats_sold)
    else:
        badge = None
    return _group_buy_poster(group_buy, _share_url(group_buy), badge)


@public.get("/gb/<code>/t/<team_code>/poster.png")
@_limit_posters
def team_poster(code: str, team_code: str):
    """A team's share poster: the seats it still needs, as its page counts them."""
    group_buy = _public_group_buy(code)
    team = queries.team_by_code(group_buy, team_code) or abort(404)
    if team.status == TeamStatus.SUCCEEDED:
        badge = _("The team is full!")
    elif team.status == TeamStatus.FORMING and team.expires_at > utcnow() and team.seats_left:
        badge = ngettext(
            "%(num)s more family needed", "%(num)s more families needed", team.seats_left
        )
    else:
        badge = None
    return _group_buy_poster(group_buy, services.team_url(team), badge)


@public.get("/gb/<code>/cover")
def campaign_cover(code: str):
    group_buy = queries.group_buy_by_code(current_institution(), code)
    if group_buy is None or not group_buy.has_cover:
        abort(404)
    return image_response(group_buy.cover, group_buy.cover_content_type, group_buy.cover_updated_at)


# --- flash sales (秒杀): staff ---------------------------------------------------------------

FLASH_LABELS = {"phase_labels": FLASH_PHASE_LABELS, "order_labels": FLASH_ORDER_STATUS_LABELS}
# The service names the columns it refuses; the form asks for money in major units.
_FLASH_FORM_FIELDS = {"list_price_amount": "list_price", "sale_price_amount": "sale_price"}


@staff.get("/flash-sales")
def flash_list():
    return render_template(
        "campaigns/flash_list.html",
        sales=queries.all_flash_sales(current_institution()),
        now=utcnow(),
        **FLASH_LABELS,
    )


def _save_flash(sale: FlashSale | None):
    institution = current_institution()
    form = FlashSaleForm(obj=sale) if sale else FlashSaleForm()
    form.course_id.choices = [
        SelectChoice(course.id, course.title) for course in course_queries.all_courses(institution)
    ]
    currency = sale.currency if sale else institution.currency
    if request.method == "GET" and sale is not None:
        form.list_price.data = to_major(sale.list_price_amount, currency)
        form.sale_price.data = to_major(sale.sale_price_amount, currency)
        form.starts_at.data = to_local(sale.starts_at, institution.zone)
        form.ends_at.data = to_local(sale.ends_at, institution.zone)
    if form.validate_on_submit():
        try:
            saved = services.save_flash_sale(
                institution,
                sale,
                title=form.title.data,
                description=form.description.data or None,
                course_id=form.course_id.data,
                list_price_amount=to_minor(form.list_price.data, currency),
                sale_price_amount=to_minor(form.sale_price.data, currency),
                stock=form.stock.data,
                starts_at=from_local(form.starts_at.data, institution.zone),
                ends_at=from_local(form.ends_at.data, institution.zone),
                per_family_limit=form.per_family_limit.data,
                pay_minutes=form.pay_minutes.data,
            )
            update_picture(saved, remove=form.remove_cover.data, upload=form.cover.data)
        except ServiceError as error:
            error.field = _FLASH_FORM_FIELDS.get(error.field, error.field)
            report(error, form)
        else:
            db.session.commit()
            flash(_("Flash sale saved."), "success")
            return redirect(url_for(".flash_detail", flash_sale_id=saved.id))
    return render_template("campaigns/flash_form.html", form=form, sale=sale), form_status(form)


@staff.route("/flash-sales/new", methods=["GET", "POST"])
@require_role(*MANAGERS)
def flash_new():
    return _save_flash(None)


@staff.route("/flash-sales/<int:flash_sale_id>/edit", methods=["GET", "POST"])
@require_role(*MANAGERS)
def flash_edit(flash_sale_id: int):
    return _save_flash(get_or_404(FlashSale, flash_sale_id))


@staff.get("/flash-sales/<int:flash_sale_id>")
def flash_detail(flash_sale_id: int):
    """The sale, its share link, and its figures as they are now (attempts are counted
    in Redis)."""
    sale = get_or_404(FlashSale, flash_sale_id)
    now = utcnow()
    return render_template(
        "campaigns/flash_detail.html",
        sale=sale,
        phase=sale.phase(now),
        share_url=services.flash_url(sale),
        figures=queries.flash_figures(sale, _attempts(sale)),
        orders=queries.flash_orders(sale),
        confirm_form=ConfirmForm(),
        payments_ready=payments.accepts_payments(current_institution().id),
        now=now,
        **FLASH_LABELS,
    )


def _attempts(sale: FlashSale) -> int:
    """Attempts as Redis counts them (0 if it does not answer, rather than no page)."""
    try:
        return stock.attempts(sale.id)
    except redis.RedisError:
        return 0


@staff.post("/flash-sales/<int:flash_sale_id>/publish")
@require_role(*MANAGERS)
def flash_publish(flash_sale_id: int):
    sale = get_or_404(FlashSale, flash_sale_id)
    if ConfirmForm().validate_on_submit():
        try:
            services.publish_flash_sale(current_institution(), sale)
        except ServiceError as error:
            report(error)
        else:
            db.session.commit()
            flash(_("The flash sale is published: its page counts down to the start."), "success")
    return redirect(url_for(".flash_detail", flash_sale_id=sale.id))


@staff.post("/flash-sales/<int:flash_sale_id>/end")
@require_role(*MANAGERS)
def flash_end(flash_sale_id: int):
    sale = get_or_404(FlashSale, flash_sale_id)
    if ConfirmForm().validate_on_submit():
        services.end_flash_sale(current_institution(), sale)
        db.session.commit()
        flash(_("The sale has ended. Orders waiting for payment keep their time to pay."), "info")
    return redirect(url_for(".flash_detail", flash_sale_id=sale.id))


@staff.get("/flash-sales/<int:flash_sale_id>/preview")
def flash_preview(flash_sale_id: int):
    """The public page as parents will see it, with buying switched off."""
    sale = get_or_404(FlashSale, flash_sale_id)
    return _render_flash(sale, _buy_form(blank=True), _remind_form(blank=True), preview=True)


@staff.get("/flash-sales/<int:flash_sale_id>/qr.svg", defaults={"fmt": "svg"})
@staff.get("/flash-sales/<int:flash_sale_id>/qr.png", defaults={"fmt": "png"})
def flash_qr(flash_sale_id: int, fmt: str):
    sale = get_or_404(FlashSale, flash_sale_id)
    return qr_response(services.flash_url(sale), fmt, f"flash-sale-{sale.code}")


@staff.get("/flash-sales/<int:flash_sale_id>/orders.csv")
@require_role(*MANAGERS)
def flash_orders_csv(flash_sale_id: int):
    sale = get_or_404(FlashSale, flash_sale_id)
    zone = current_institution().zone

    def at(value) -> str:
        return value.astimezone(zone).isoformat() if value else ""

    rows = (
        [
            order.code,
            order.status.value,
            order.contact.parent_name,
            order.contact.phone,
            order.student.name,
            to_major(order.price_amount, sale.currency),
            sale.currency,
            at(order.created_at),
            at(order.pay_by),
            at(order.paid_at),
            at(order.expired_at),
            at(order.refunded_at),
        ]
        for order in queries.flash_orders(sale)
    )
    return csv_response(
        f"flash-sale-{sale.code}.csv",
        [
            "order",
            "status",
            "parent",
            "phone",
            "child",
            "price",
            "currency",
            "ordered_at",
            "pay_by",
            "paid_at",
            "expired_at",
            "refunded_at",
        ],
        rows,
    )


# --- flash sales (秒杀): the public page -------------------------------------------------------

FLASH_SESSION_KEY = "flash_orders"  # {sale code: [order codes]}: this browser's family's
FLASH_TAKEN_KEY = "flash_taken"  # {order code: when its seat was taken}: until it is written
# An order queued this long ago, neither written nor refused, was lost with Redis's data.
WRITE_WAIT = timedelta(minutes=2)
# While a sale is live its page shows the seats left; a kept page says so for at most this
# long (a page is also dropped at once when a seat is paid for or given back).
SEATS_SHOWN_FOR = timedelta(seconds=5)


def _buy_form(blank: bool = False) -> FlashBuyForm:
    """The buy form, filled from the request unless `blank`."""
    return FlashBuyForm(formdata=None) if blank else FlashBuyForm()


def _pay_form(blank: bool = False) -> FlashPayForm:
    """The form that pays for a seat taken, filled from the request unless `blank`."""
    return checkout.prepare(FlashPayForm(formdata=None) if blank else FlashPayForm())


def _remind_form(blank: bool = False) -> FlashRemindForm:
    """The "remind me" form (its fields named remind-*: it shares the page with the buy
    form), filled from the request unless `blank`."""
    if blank:
        return FlashRemindForm(prefix="remind", formdata=None)
    return FlashRemindForm(prefix="remind")


def _flash_codes(code: str) -> list[str]:
    return list((session.get(FLASH_SESSION_KEY) or {}).get(code, []))


def _remember_order(sale: FlashSale | FlashTerms, order_code: str) -> None:
    """Keep the order's code in this browser's session, and when it was first kept (its
    order may still be being written: the same tap sent twice answers the second with the
    first's code, perhaps before its order is written)."""
    kept = {
        code: codes
        for code, codes in (session.get(FLASH_SESSION_KEY) or {}).items()
        if code != sale.code
    }
    codes = [c for c in _flash_codes(sale.code) if c != order_code]
    while len(kept) >= 10:  # a browser rarely takes part in more sales at once
        kept.pop(next(iter(kept)))
    session[FLASH_SESSION_KEY] = {**kept, sale.code: [*codes, order_code][-10:]}
    taken = session.get(FLASH_TAKEN_KEY) or {}
    if order_code not in taken:
        kept_times = dict(list(taken.items())[-9:])
        session[FLASH_TAKEN_KEY] = {**kept_times, order_code: int(utcnow().timestamp())}


def _forget_orders(sale: FlashSale, order_codes: set[str]) -> None:
    """Forget orders that were never written (refused, or lost with Redis's data)."""
    orders = dict(session.get(FLASH_SESSION_KEY) or {})
    orders[sale.code] = [c for c in orders.get(sale.code, []) if c not in order_codes]
    session[FLASH_SESSION_KEY] = orders
    _written(order_codes)


def _written(order_codes: set[str]) -> None:
    taken = session.get(FLASH_TAKEN_KEY) or {}
    if order_codes & taken.keys():
        session[FLASH_TAKEN_KEY] = {c: t for c, t in taken.items() if c not in order_codes}


@dataclass(frozen=True)
class Unwritten:
    """A seat this browser's family took whose order is not in the database: being
    written (`refusal` None), or refused."""

    code: str
    refusal: str | None = None


_QUEUED_REFUSALS = {
    "sold_out": services.SOLD_OUT,
    "over_limit": services.OVER_LIMIT,
    "closed": services.FLASH_CLOSED,
}


def _unwritten(sale: FlashSale, codes: list[str], mine: list[FlashOrder]) -> list[Unwritten]:
    """The family's seats whose orders the writer has not written (app.campaigns.stock):
    still waiting, or refused by the database, or lost with Redis's data (queued longer
    than WRITE_WAIT ago). Those refused or lost are told once, then forgotten."""
    written = {order.code for order in mine}
    _written(written)
    missing = [code for code in codes if code not in written]
    if not missing:
        return []
    try:
        refused = stock.refusals(sale.id, missing)
    except redis.RedisError:
        refused = {}
    taken = session.get(FLASH_TAKEN_KEY) or {}
    oldest = (utcnow() - WRITE_WAIT).timestamp()
    unwritten = []
    for code in missing:
        if code in refused:
            reason = _QUEUED_REFUSALS.get(refused[code], services.BUSY)
        elif taken.get(code, 0) < oldest:
            reason = _("We could not confirm this seat. Please try again.")
        else:
            unwritten.append(Unwritten(code))
            continue
        unwritten.append(Unwritten(code, str(reason)))
    _forget_orders(sale, {u.code for u in unwritten if u.refusal})
    return unwritten


def _has_flash_orders() -> bool:
    """This browser's family has orders in this sale: its page is rendered for it."""
    return bool(_flash_codes(request.view_args.get("code", "")))


def _flash_phone_key() -> str:
    """The phone number a purchase or a reminder is for, as digits (the way it is typed
    does not make another number)."""
    typed = request.form.get("phone") or request.form.get("remind-phone") or ""
    digits = "".join(ch for ch in typed if ch.isdigit())[-11:]
    return f"flash-phone:{current_institution().id}:{digits}"


def _flash_limits(view):
    """Bots are slowed per address and per phone number. Not per sale, as a group buy's
    joins are: a crowd at the start is what a flash sale is for, and Redis turns it away
    cheaply once the seats are gone (app.campaigns.stock)."""
    per_ip = limiter.limit(lambda: current_app.config["FLASH_LIMIT_PER_IP"], methods=["POST"])
    per_phone = limiter.limit(
        lambda: current_app.config["FLASH_LIMIT_PER_PHONE"],
        methods=["POST"],
        key_func=_flash_phone_key,
    )
    return per_ip(per_phone(view))


def _public_flash_sale(code: str) -> FlashSale:
    sale = queries.flash_sale_by_code(current_institution(), code)
    if sale is None or not sale.is_published:
        abort(404)
    return sale


def _flash_consent_text(institution) -> str:
    return _(
        "I agree that %(name)s may contact me about this flash sale and keep my details for it.",
        name=institution.name,
    )


def _seats_left(sale: FlashSale) -> int:
    """Seats left as Redis counts them (an attempt takes its seat there first), never
    more than the database's count as the page is drawn."""
    try:
        counted = stock.seats_left(sale.id)
    except redis.RedisError:
        counted = None
    return sale.seats_left if counted is None else min(counted, sale.seats_left)


def _shown_phase(sale: FlashSale, now) -> FlashPhase:
    """The sale's phase; a draft (in the preview) as it will be once published."""
    phase = sale.phase(now)
    if phase != FlashPhase.DRAFT:
        return phase
    if now < sale.starts_at:
        return FlashPhase.UPCOMING
    return FlashPhase.LIVE if now < sale.ends_at else FlashPhase.ENDED


def _share_link(sale: FlashSale, ref: str | None = None) -> str:
    """The sale's link, carrying a family's referral code (`?ref=`) when given one."""
    return sharing.with_ref(services.flash_url(sale), ref)


def _render_flash(
    sale: FlashSale,
    form: FlashBuyForm,
    remind_form: FlashRemindForm,
    preview: bool = False,
    pay_form: FlashPayForm | None = None,
):
    now = utcnow()
    pay_form = pay_form or _pay_form(blank=True)
    phase = _shown_phase(sale, now)
    seats = _seats_left(sale) if phase == FlashPhase.LIVE and not preview else sale.seats_left
    pagecache.fresh_until(sale.next_change(now))
    if phase == FlashPhase.LIVE:
        pagecache.fresh_until(now + SEATS_SHOWN_FOR)
    codes = [] if preview else _flash_codes(sale.code)
    mine = queries.flash_orders_of(sale, codes)
    unwritten = _unwritten(sale, codes, mine)
    waiting = [seat for seat in unwritten if seat.refusal is None]
    held = [order for order in mine if order.status in ACTIVE_FLASH_ORDER] + waiting
    paid = [order for order in mine if order.status == FlashOrderStatus.PAID]
    # The class group the purchase put the family in (or one to join), and their own link
    # to share: theirs only, on a page rendered for them (never a kept one).
    family = paid[-1].contact if paid else None
    return render_template(
        "campaigns/public_flash.html",
        sale=sale,
        phase=phase,
        seats=seats,
        mine=mine,
        unwritten=unwritten,
        waiting=waiting,
        pay_form=pay_form,
        at_limit=len(held) >= sale.per_family_limit,
        group_offer=group_queries.offer_for_course(sale.course, family, now) if family else None,
        enrolment=course_queries.enrolment_by_id(paid[-1].enrolment_id) if paid else None,
        family_link=_share_link(sale, family.referral_code) if family else None,
        family_ref=family.referral_code if family else None,
        price=format_money(sale.sale_price_amount, sale.currency),
        form=form,
        remind_form=remind_form,
        consent_text=_flash_consent_text(current_institution()),
        preview=preview,
        now=now,
        **FLASH_LABELS,
    ), max(form_status(form), form_status(remind_form), form_status(pay_form))


@public.route("/fs/<code>", methods=["GET", "POST"])
@_flash_limits
@pagecache.cached(lambda code: [("flash_sale", code)], personal=_has_flash_orders)
@pagecache.refuses_in_front("flash_sale", lambda code: code)
def flash_page(code: str):
    """A flash sale: before the start a countdown and "remind me", during it the seats
    left and buying, after it a clear "sold out" or "ended". Kept in the cache for every
    visitor without orders of their own in it."""
    if request.method == "POST" and "remind-phone" in request.form:
        return _remind(_public_flash_sale(code), _remind_form())
    form = _buy_form()
    if request.method == "POST":
        # A tap on "buy" is decided on the sale's terms kept in memory and by Redis: the
        # crowd's taps, the winners' too, ask nothing of the database.
        terms = services.flash_terms(current_institution(), code)
        if terms is None or not terms.is_published:
            abort(404)
        if form.validate_on_submit():
            response = _buy(terms, form)
            if response is not None:
                return response
    return _render_flash(_public_flash_sale(code), form, _remind_form(blank=True))


def _buy(sale: FlashTerms, form: FlashBuyForm):
    """Take a seat (in Redis, which queues its order for the writer job); the family pays
    for it next (`flash_pay`), within the sale's minutes, once the page shows the order.
    Returns a response, or None to show the form again with its errors."""
    institution = current_institution()
    if form.is_bot():
        return bot_answer()
    details = form.details(consent_text=_flash_consent_text(institution), locale=current_language())
    touch = Touch.from_request(SourceKind.CAMPAIGN, sale.code, request.args, request.referrer)
    page_url = url_for(".flash_page", code=sale.code)
    since = pagecache.generation()
    try:
        seat = services.take_flash_seat(institution, sale, details, touch, form.attempt_key())
    except ServiceError as error:
        if error.code == "sold_out" or (error.code == "closed" and utcnow() >= sale.starts_at):
            # The page itself says "sold out" or "ended": a short answer, the same for
            # everyone until the sale changes, so the crowd's next taps get it in front of
            # Flask (a seat given back changes the sale, and ends that).
            pagecache.remember_refusal(
                institution.id,
                "flash_sale",
                sale.code,
                page_url,
                counted_in=stock.attempts_key(sale.id),
                since=since,
            )
            return redirect(page_url)
        if error.code == "over_limit":  # the family is told, on the sale's page
            report(error)
            return redirect(page_url)
        report(error, form)
        return None
    _remember_order(sale, seat.order_code)
    if seat.new:  # not the same tap again (its order, as it is)
        flash(
            ngettext(
                "Seat taken! Pay within %(num)s minute or it goes back on sale.",
                "Seat taken! Pay within %(num)s minutes or it goes back on sale.",
                sale.pay_minutes,
            ),
            "success",
        )
    return redirect(f"{page_url}#order-{seat.order_code}")


@public.post("/fs/<code>/orders/<order_code>/pay")
@limiter.limit(lambda: current_app.config["FLASH_LIMIT_PER_IP"])
def flash_pay(code: str, order_code: str):
    """Pay for a seat this browser's family took: with the test card here, or on the
    Payment Element's page. The order's deadline stands whichever way."""
    sale = _public_flash_sale(code)
    found = queries.flash_orders_of(sale, [order_code])
    if not found or order_code not in _flash_codes(sale.code):
        abort(404)  # not this browser's family's
    order = found[0]
    page_url = url_for(".flash_page", code=sale.code)
    form = _pay_form()
    if not form.validate_on_submit():
        return _render_flash(sale, _buy_form(blank=True), _remind_form(blank=True), pay_form=form)
    if order.status != FlashOrderStatus.PENDING or order.pay_by <= utcnow():
        return redirect(page_url)  # the page says what became of it
    # The order was committed when its seat was taken: Stripe is called outside any lock.
    page = checkout.commit_then_charge(
        order.payment, card=form.card(), title=sale.title, next_path=page_url
    )
    if page is not None:  # the Payment Element: the parent comes back to the sale's page
        return redirect(page)
    db.session.refresh(order)
    if order.status == FlashOrderStatus.PAID:
        flash(
            _(
                "Seat secured! %(child)s is enrolled in %(course)s.",
                child=order.student.name,
                course=sale.course.title,
            ),
            "success",
        )
    elif order.status == FlashOrderStatus.PENDING:
        flash(_("Your seat is reserved while your payment is confirmed."), "info")
    else:
        flash(
            _(
                "The payment did not go through: %(reason)s Nothing is taken from your card "
                "and the seat went back on sale.",
                reason=order.payment.failure_text,
            ),
            "error",
        )
    return redirect(f"{page_url}#order-{order.code}")


def _remind(sale: FlashSale, form: FlashRemindForm):
    """A parent's "remind me": the family (found by phone, or created) is told once, 5
    minutes before the start."""
    institution = current_institution()
    page_url = url_for(".flash_page", code=sale.code)
    if form.validate_on_submit():
        if form.is_bot():
            return bot_answer()
        if utcnow() >= sale.starts_at:  # started meanwhile: nothing left to remind of
            return redirect(page_url)
        touch = Touch.from_request(SourceKind.CAMPAIGN, sale.code, request.args, request.referrer)
        details = ContactDetails(
            parent_name=form.parent_name.data,
            email=form.email.data or None,
            consent_text=_flash_consent_text(institution),
            locale=current_language(),
        )
        try:
            contact, _created = find_or_create_contact(
                institution, phone=form.phone.data, details=details, touch=touch
            )
            services.ask_flash_reminder(institution, sale, contact)
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            flash(_("Done: we will remind you 5 minutes before the sale starts."), "success")
            return redirect(page_url)
    return _render_flash(sale, _buy_form(blank=True), form)


@public.get("/fs/<code>/cover")
def flash_cover(code: str):
    sale = queries.flash_sale_by_code(current_institution(), code)
    if sale is None or not sale.has_cover:
        abort(404)
    return image_response(sale.cover, sale.cover_content_type, sale.cover_updated_at)


@public.get("/fs/<code>/poster.png")
@_limit_posters
def flash_poster(code: str):
    """The sale's share poster: the seats left as its page shows them."""
    sale = _public_flash_sale(code)
    now = utcnow()
    phase = sale.phase(now)
    if phase == FlashPhase.LIVE:
        seats = _seats_left(sale)
        badge = (
            ngettext("%(num)s seat left", "%(num)s seats left", seats)
            if seats > 0
            else _("All seats are taken for now")
        )
    elif phase == FlashPhase.UPCOMING:
        badge = _("Opens %(at)s", at=format_datetime(sale.starts_at, "short"))
    elif phase == FlashPhase.SOLD_OUT:
        badge = _("Sold out!")
    else:
        badge = _("This sale has ended")
    return sharing.poster_response(
        current_institution(),
        link=services.flash_url(sale),
        family_by_ref=loyalty_queries.contact_by_referral_code,
        title=sale.title,
        subtitle=sale.course.title,
        price_label=_("Flash sale price"),
        price=format_money(sale.sale_price_amount, sale.currency),
        list_price=format_money(sale.list_price_amount, sale.currency),
        badge=badge,
        cover_of=sale,
    )


@public.get("/fs/<code>/qr.svg")
def flash_share_qr(code: str):
    """The sale's link as a QR code, carrying the referral code it is asked with."""
    sale = _public_flash_sale(code)
    response = qr_response(_share_link(sale, request.args.get("ref")), "svg", f"fs-{sale.code}")
    response.headers["Content-Disposition"] = "inline"
    return response
