"""VIP memberships: staff pages under /staff/<slug>/vip (tiers, members, granting one from
a family's record), and the family's checkout for a paid tier (/<slug>/me/vip/<tier id>),
reached from its own page (templates/memberships/_family_vip.html)."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import format_date
from flask_babel import gettext as _
from flask_login import current_user
from wtforms import SelectChoice

from app.accounts.models import MANAGERS
from app.contacts.models import Contact
from app.db import utcnow
from app.errors import ServiceError, form_status, report
from app.extensions import db, limiter
from app.memberships import queries, services
from app.memberships.forms import BuyForm, GrantForm, NewTierForm, TierForm
from app.memberships.models import SOURCE_LABELS, VipTier, last_day_of
from app.money import to_major, to_minor
from app.paging import paginate
from app.payments import checkout
from app.payments import services as payments
from app.payments.models import PaymentStatus
from app.portal import services as portal
from app.tenancy import (
    current_institution,
    get_or_404,
    public_blueprint,
    require_role,
    staff_blueprint,
)
from app.web import list_page

staff = staff_blueprint("memberships", __name__)
public = public_blueprint("memberships_public", __name__)
BLUEPRINTS = [staff, public]
PER_PAGE = 50


# --- staff: tiers ------------------------------------------------------------------------------


@staff.get("/vip")
def tier_list():
    institution = current_institution()
    return render_template(
        "memberships/tier_list.html",
        tiers=queries.all_tiers(institution),
        counts=queries.active_counts(institution, utcnow()),
        can_buy=payments.accepts_payments(institution.id),
    )


@staff.route("/vip/tiers/new", methods=["GET", "POST"])
@require_role(*MANAGERS)
def tier_new():
    return _save_tier(None)


@staff.route("/vip/tiers/<int:tier_id>/edit", methods=["GET", "POST"])
@require_role(*MANAGERS)
def tier_edit(tier_id: int):
    return _save_tier(get_or_404(VipTier, tier_id))


def _save_tier(tier: VipTier | None):
    institution = current_institution()
    form = TierForm(obj=tier) if tier else NewTierForm()
    if request.method == "GET" and tier is not None:
        form.price.data = to_major(tier.price_amount, institution.currency)
    if form.validate_on_submit():
        try:
            services.save_tier(
                institution,
                tier,
                key=form.key.data if tier is None else None,
                name=form.name.data,
                price_amount=to_minor(form.price.data, institution.currency),
                duration_days=form.duration_days.data,
                perks=form.perks.data or None,
                is_active=form.is_active.data,
            )
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            flash(_("Tier saved."), "success")
            return redirect(url_for(".tier_list"))
    return render_template("memberships/tier_form.html", form=form, tier=tier), form_status(form)


# --- staff: members ----------------------------------------------------------------------------


@staff.get("/vip/members")
def membership_list():
    """The institution's memberships: running now, to come (renewals), over, or all."""
    show = request.args.get("show", "active")
    if show not in queries.SHOWS:
        show = "active"
    number, args = list_page()
    now = utcnow()
    page = paginate(queries.memberships(current_institution(), now, show), number, PER_PAGE)
    return render_template(
        "memberships/membership_list.html",
        memberships=page.items,
        page=page,
        args=args,
        show=show,
        source_labels=SOURCE_LABELS,
        zone=current_institution().zone,
        now=now,
    )


@staff.route("/vip/grant/<int:contact_id>", methods=["GET", "POST"])
@require_role(*MANAGERS)
def grant(contact_id: int):
    """Give the family a membership (free tiers are given only this way), from its
    record; its memberships so far are listed here too."""
    institution = current_institution()
    contact = get_or_404(Contact, contact_id)
    tiers = queries.active_tiers(institution)
    form = GrantForm()
    form.tier_id.choices = [SelectChoice(tier.id, tier.name) for tier in tiers]
    if form.validate_on_submit():
        tier = next(tier for tier in tiers if tier.id == form.tier_id.data)
        try:
            membership = services.grant_membership(
                institution, contact, tier, current_user, days=form.days.data, key=form.key.data
            )
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            flash(
                _(
                    "%(name)s is a VIP member until %(day)s.",
                    name=contact.parent_name,
                    day=format_date(membership.last_day(institution.zone)),
                ),
                "success",
            )
            return redirect(url_for("contacts.contact_detail", contact_id=contact.id))
    return render_template(
        "memberships/grant.html",
        form=form,
        contact=contact,
        tiers=tiers,
        vip=queries.vip_status(institution, contact, utcnow()),
        source_labels=SOURCE_LABELS,
        zone=institution.zone,
    ), form_status(form)


# --- the family: buying a paid tier ------------------------------------------------------------


@public.route("/me/vip/<int:tier_id>", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["REGISTER_LIMIT_PER_IP"], methods=["POST"])
def buy(tier_id: int):
    """A paid tier's checkout, for the family signed in to its page: a first membership,
    or a renewal that starts when its VIP time ends."""
    institution = current_institution()
    contact = portal.family_signed_in(institution, session)
    if contact is None:
        portal.come_back_after_sign_in(session, request.path)
        return redirect(url_for("portal.page"))
    tier = queries.tier_of(institution, tier_id)
    if tier is None or not tier.is_active or tier.is_free:
        abort(404)
    form = checkout.prepare(BuyForm())
    if form.validate_on_submit():
        response = _buy(institution, contact, tier, form)
        if response is not None:
            return response
    form.show(tier)  # as it is now, also after a refusal because it changed
    now = utcnow()
    starts_at, ends_at = queries.next_term(institution, contact, tier.duration_days, now)
    return render_template(
        "memberships/buy.html",
        tier=tier,
        form=form,
        renews_from=starts_at if starts_at > now else None,  # a renewal
        last_day=last_day_of(ends_at, institution.zone),
        can_buy=payments.accepts_payments(institution.id),
        pay_minutes=int(payments.pay_window().total_seconds() // 60),
    ), form_status(form)


def _buy(institution, contact: Contact, tier: VipTier, form: BuyForm):
    """Start the payment and take it (the membership is written when it succeeds).
    Returns a redirect, or None to show the form again with its errors."""
    try:
        payment = services.start_purchase(
            institution,
            contact,
            tier,
            price_seen=form.price_seen.data,
            days_seen=form.days_seen.data,
        )
    except ServiceError as error:
        report(error, form)
        return None
    # The pending payment is committed before Stripe is called (payments.checkout).
    page = checkout.commit_then_charge(
        payment, card=form.card(), title=tier.name, next_path=url_for("portal.page")
    )
    if page is not None:  # the Payment Element: Stripe brings the family back to its page
        return redirect(page)
    if payment.status == PaymentStatus.FAILED:
        message = _(
            "The payment did not go through: %(reason)s Nothing is taken from your card.",
            reason=payment.failure_text,
        )
        report(ServiceError(message, field="card_number", code="declined"), form)
        return None
    flash(_("Thank you! Your VIP membership is confirmed."), "success")
    return redirect(url_for("portal.page", _anchor="vip"))
