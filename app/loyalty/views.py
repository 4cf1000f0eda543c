"""Loyalty: staff pages under /staff/<slug>/rewards (rewards, redemptions to hand over,
the points rules) and a family's points (/staff/<slug>/contacts/<id>/points); and the
family's redemption from their own page (/<slug>/me, whose points panel is
templates/loyalty/_family_points.html)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from flask import (
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from app import sharing
from app.accounts import queries as account_queries
from app.accounts.models import MANAGERS
from app.campaigns import queries as campaign_queries
from app.contacts.models import Contact
from app.courses import queries as course_queries
from app.courses.models import CourseKind
from app.db import utcnow
from app.errors import ServiceError, form_status, report
from app.extensions import db, limiter
from app.forms import ConfirmForm
from app.groups import queries as group_queries
from app.images import qr_response
from app.leads import queries as lead_queries
from app.loyalty import queries, services
from app.loyalty.forms import (
    EditRewardForm,
    GrantPointsForm,
    NewRewardForm,
    PointsRulesForm,
    RedeemForm,
)
from app.loyalty.models import REFERRAL_EVENT_LABELS, Redemption, RedemptionStatus, Reward
from app.portal import services as portal
from app.tenancy import (
    current_institution,
    get_or_404,
    public_blueprint,
    require_role,
    staff_blueprint,
)
from app.web import list_page, safe_next

staff = staff_blueprint("loyalty", __name__)
public = public_blueprint("loyalty_public", __name__)
BLUEPRINTS = [staff, public]
PER_PAGE = 50
REDEMPTION_FILTERS = ("requested", "fulfilled", "cancelled", "all")


@staff.app_template_global()
def points_grant_form() -> GrantPointsForm:
    """The give/take points form, for the points panel of a contact's page (which the
    contacts domain draws without importing this domain's forms)."""
    return GrantPointsForm(formdata=None)


# --- staff: rewards ----------------------------------------------------------------------------


@staff.get("/rewards")
def reward_list():
    institution = current_institution()
    return render_template(
        "loyalty/reward_list.html",
        rewards=queries.all_rewards(institution),
        waiting=queries.requested_counts(institution),
    )


@staff.route("/rewards/new", methods=["GET", "POST"])
@require_role(*MANAGERS)
def reward_new():
    return _save_reward(None)


@staff.route("/rewards/<int:reward_id>/edit", methods=["GET", "POST"])
@require_role(*MANAGERS)
def reward_edit(reward_id: int):
    return _save_reward(get_or_404(Reward, reward_id))


def _save_reward(reward: Reward | None):
    if reward is None:
        form = NewRewardForm()
    else:
        form = EditRewardForm(obj=reward)
        if request.method == "GET":
            form.stock_seen.show(reward.stock)
    if form.validate_on_submit():
        try:
            if reward is None:
                services.create_reward(current_institution(), key=form.key.data, **form.values())
            else:
                services.update_reward(reward, stock_seen=form.stock_seen.data, **form.values())
        except ServiceError as error:
            report(error, form)
            if reward is not None:
                form.stock_seen.show(reward.stock)  # read again: what is left now
        else:
            db.session.commit()
            flash(_("Reward saved."), "success")
            if reward is not None and reward.stock != form.stock.data:
                flash(
                    _(
                        "Families redeemed some while you were editing: %(n)s in stock now.",
                        n=reward.stock,
                    ),
                    "info",
                )
            return redirect(url_for(".reward_list"))
    return render_template("loyalty/reward_form.html", form=form, reward=reward), form_status(form)


# --- staff: redemptions ------------------------------------------------------------------------


@staff.get("/rewards/redemptions")
def redemption_list():
    """Rewards families redeemed: those to hand over first (the default), or all."""
    shown = request.args.get("status", "requested")
    shown = shown if shown in REDEMPTION_FILTERS else "requested"
    number, args = list_page()
    status = None if shown == "all" else RedemptionStatus(shown)
    page = queries.redemptions(current_institution(), status, number, PER_PAGE)
    return render_template(
        "loyalty/redemption_list.html",
        redemptions=page.items,
        page=page,
        args=args,
        shown=shown,
        confirm_form=ConfirmForm(),
    )


@staff.post("/rewards/redemptions/<int:redemption_id>/fulfil")
def redemption_fulfil(redemption_id: int):
    redemption = get_or_404(Redemption, redemption_id)
    if ConfirmForm().validate_on_submit():
        try:
            services.fulfil_redemption(redemption, current_user)
        except ServiceError as error:
            report(error)
        else:
            db.session.commit()
            flash(_("Marked as handed over."), "success")
    return redirect(url_for(".redemption_list"))


@staff.post("/rewards/redemptions/<int:redemption_id>/cancel")
def redemption_cancel(redemption_id: int):
    redemption = get_or_404(Redemption, redemption_id)
    if ConfirmForm().validate_on_submit():
        try:
            services.cancel_redemption(current_institution(), redemption, current_user)
        except ServiceError as error:
            report(error)
        else:
            db.session.commit()
            flash(_("Cancelled: the family has its points back."), "success")
    return redirect(url_for(".redemption_list"))


# --- staff: points -----------------------------------------------------------------------------


@staff.route("/rewards/rules", methods=["GET", "POST"])
@require_role(*MANAGERS)
def points_rules():
    institution = current_institution()
    form = PointsRulesForm(obj=queries.points_rules(institution))
    if form.validate_on_submit():
        services.save_points_rules(institution, **form.values())
        db.session.commit()
        flash(_("Points rules saved."), "success")
        return redirect(url_for(".points_rules"))
    return render_template("loyalty/points_rules.html", form=form), form_status(form)


@staff.route("/contacts/<int:contact_id>/points", methods=["GET", "POST"])
def contact_points(contact_id: int):
    """A family's whole ledger, and giving or taking points (the contact's page has the
    same form: a refused one comes back here with its errors)."""
    contact = get_or_404(Contact, contact_id)
    form = GrantPointsForm()
    if form.validate_on_submit():
        try:
            services.grant_points(
                current_institution(),
                contact,
                form.amount.data,
                form.note.data,
                current_user,
                key=form.key.data,
            )
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            flash(_("Points saved."), "success")
            return redirect(url_for("contacts.contact_detail", contact_id=contact.id))
    return render_template(
        "loyalty/contact_points.html",
        contact=contact,
        form=form,
        balance=queries.balance(contact),
        entries=queries.ledger(contact, limit=200),
        redemptions=queries.family_redemptions(contact, limit=50),
        staff_names={
            m.user_id: m.user.name
            for m in account_queries.institution_members(current_institution())
        },
    ), form_status(form)


# --- families: redeeming -----------------------------------------------------------------------


@public.post("/me/rewards/<int:reward_id>/redeem")
@limiter.limit("10 per minute")
def redeem(reward_id: int):
    """The family redeems a reward from their page, at the price its confirmation showed;
    a refusal (not enough points, sold out, a price changed since) is shown there, and
    nothing was spent."""
    institution = current_institution()
    contact = portal.family_signed_in(institution, session) or abort(404)
    reward = get_or_404(Reward, reward_id)
    form = RedeemForm()
    if not form.validate_on_submit():
        return redirect(url_for("portal.page"))
    try:
        services.redeem_reward(institution, contact, reward, price_seen=form.price_seen.data)
    except ServiceError as error:
        report(error)
    else:
        db.session.commit()
        flash(
            _(
                "%(reward)s is yours. Show this page at the front desk to collect it.",
                reward=reward.title,
            ),
            "success",
        )
    return redirect(url_for("portal.page"))


# --- referrals -------------------------------------------------------------------------------


@staff.get("/referrals")
def referral_list():
    """Top referrers and who brought whom, for the whole institution or one campaign,
    course or group (`?source=`)."""
    institution = current_institution()
    sources = queries.referral_sources(institution)
    source = request.args.get("source") or None
    if source not in sources:
        source = None
    return render_template(
        "loyalty/referral_list.html",
        sources=sources,
        source=source,
        top=queries.top_referrers(institution, source),
        chains=queries.referral_chains(institution, source),
        event_labels=REFERRAL_EVENT_LABELS,
    )


@public.get("/me/invite")
def invite():
    """The family's page for bringing friends: its referral code, and links (with QR
    codes) to what it can share, each carrying the code."""
    institution = current_institution()
    contact = portal.family_signed_in(institution, session)
    if contact is None:
        portal.come_back_after_sign_in(session, request.path)
        return redirect(url_for("portal.page"))
    rules = queries.points_rules(institution)
    return render_template(
        "loyalty/invite.html",
        contact=contact,
        links=[
            (title, path, _with_ref(path, contact.referral_code))
            for title, path in share_paths(institution, contact)
        ],
        per_referral=rules.per_referral,
    )


@public.get("/me/invite/qr.svg")
def invite_qr():
    """A QR code of a link on this institution's site, carrying the family's code."""
    institution = current_institution()
    contact = portal.family_signed_in(institution, session) or abort(404)
    path = safe_next(request.args.get("to"))
    if path is None or not path.startswith(f"/{institution.slug}/"):
        abort(404)
    response = qr_response(_with_ref(path, contact.referral_code), "svg", "invite")
    response.headers["Content-Disposition"] = "inline"
    return response


def _with_ref(path: str, code: str) -> str:
    """The page at `path` on PUBLIC_URL, carrying the family's referral code."""
    parts = urlsplit(path)
    public = urlsplit(current_app.config["PUBLIC_URL"])
    url = urlunsplit((public.scheme, public.netloc, parts.path, parts.query, ""))
    return sharing.with_ref(url, code)


def share_paths(institution, contact) -> list[tuple[str, str]]:
    """What a family can share: lead forms taking answers, open trial courses, group buys
    and flash sales taking part, and the groups it is in (through an invitation that still
    works)."""
    now = utcnow()
    paths = [
        (form.title, url_for("lead_forms_public.form_page", code=form.code))
        for form in lead_queries.all_forms(institution)
        if form.accepts_submissions(now)
    ]
    paths += [
        (course.title, url_for("courses_public.course_page", code=course.code))
        for course in course_queries.all_courses(institution)
        if course.is_open and course.kind == CourseKind.TRIAL
    ]
    paths += [
        (group_buy.title, url_for("campaigns_public.campaign_page", code=group_buy.code))
        for group_buy in campaign_queries.all_group_buys(institution)
        if group_buy.is_open(now)
    ]
    paths += [
        (sale.title, url_for("campaigns_public.flash_page", code=sale.code))
        for sale in campaign_queries.all_flash_sales(institution)
        if sale.is_published and now < sale.ends_at
    ]
    for group in group_queries.family_groups(contact):
        invite = group_queries.open_invite(group, now)
        if invite is not None:
            paths.append((group.title, url_for("groups_public.join", code=invite.code)))
    return paths
