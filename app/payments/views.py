from __future__ import annotations

import logging

import stripe
from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from app.accounts.models import Role
from app.errors import ServiceError, form_status, render_error
from app.extensions import csrf, db, limiter, talisman
from app.jobs import enqueue_after_commit
from app.payments import checkout, gateway, queries, services
from app.payments.forms import StripeSettingsForm
from app.payments.models import Payment, PaymentStatus
from app.tenancy import (
    bind_request,
    current_institution,
    institution_by_slug,
    public_blueprint,
    require_role,
    staff_blueprint,
)
from app.urls import external_url
from app.web import CONTENT_SECURITY_POLICY, current_language

log = logging.getLogger(__name__)

staff = staff_blueprint("payments", __name__)
public = public_blueprint("payments_public", __name__)
webhooks = Blueprint("stripe_webhooks", __name__)
BLUEPRINTS = [staff, public, webhooks]

# The checkout page loads Stripe.js, which draws the Payment Element in frames of its own
# and talks to Stripe's API; only that page's policy lets it.
CHECKOUT_POLICY = {
    **CONTENT_SECURITY_POLICY,
    "script-src": ["'self'", "https://js.stripe.com"],
    "frame-src": ["https://js.stripe.com", "https://hooks.stripe.com"],
    "connect-src": ["'self'", "https://api.stripe.com"],
    "img-src": ["'self'", "data:", "https://*.stripe.com"],
}


@public.app_errorhandler(gateway.Unavailable)
def stripe_unavailable(error: gateway.Unavailable):
    """Stripe could not be reached, wherever it happened: what the request wrote without
    a commit is rolled back, and the page says so plainly. (A checkout that met it has
    already failed its payment and freed what it held: payments.checkout.)"""
    db.session.rollback()
    log.warning("Stripe unavailable during %s %s: %s", request.method, request.path, error)
    return render_error(
        503,
        _(
            "Online payment is unavailable right now. Nothing was taken from your card. "
            "Please try again in a few minutes."
        ),
        retry_url=request.full_path if request.method == "GET" else request.path,
        code="payments_unavailable",
    )


# --- the parent's checkout (Payment Element) ---------------------------------------------------


def _checkout(token: str) -> tuple[Payment, dict]:
    try:
        return checkout.open_checkout(current_institution(), token)
    except ServiceError:
        abort(404)


@public.get("/pay/<token>")
@talisman(content_security_policy=CHECKOUT_POLICY)
def checkout_page(token: str):
    """Stripe's Payment Element for one pending payment; once it is no longer payable (paid,
    failed, timed out) the parent goes on to what it was for."""
    payment, data = _checkout(token)
    secret = services.client_secret(payment)
    if secret is None:
        return redirect(data["next"])
    key, account = gateway.browser_keys(payment.institution_id)
    return render_template(
        "payments/checkout.html",
        payment=payment,
        title=data["title"],
        note=data.get("note"),
        client_secret=secret,
        publishable_key=key,
        stripe_account=account,
        stripe_locale="zh" if current_language().startswith("zh") else "en",
        return_url=url_for(".checkout_done", token=token, _external=True),
        back_url=data["next"],
    )


@public.get("/pay/<token>/done")
def checkout_done(token: str):
    """Where Stripe sends the parent after the Payment Element: read the PaymentIntent
    back (the webhook may not have arrived yet) and go on."""
    payment, data = _checkout(token)
    status = services.sync(payment, "checkout return")
    db.session.commit()
    if status == PaymentStatus.PENDING and request.args.get("redirect_status") == "failed":
        flash(_("The payment did not go through. Nothing is taken from your card."), "error")
    return redirect(data["next"])


@webhooks.post("/stripe/webhook/<institution_slug>")
@csrf.exempt  # Stripe signs the body instead
@limiter.exempt
def webhook(institution_slug: str):
    """Verify and store a Stripe event, queue its processing, answer at once. A repeat is
    a 200 that changes nothing; a bad signature is a 400 that stores nothing."""
    institution = institution_by_slug(institution_slug) or abort(404)
    bind_request(institution)
    try:
        event = services.record_event(
            institution, request.get_data(), request.headers.get("Stripe-Signature")
        )
    except (ValueError, stripe.SignatureVerificationError) as error:
        log.warning("webhook for %s refused: %s", institution.slug, error)
        return jsonify(error="bad_signature"), 400
    if event is None:
        return jsonify(received=True, duplicate=True)
    enqueue_after_commit("payments.process_stripe_event", institution.id, event.id)
    db.session.commit()
    return jsonify(received=True)


@staff.route("/settings/payments", methods=["GET", "POST"])
@require_role(Role.OWNER)
def settings():
    """The institution's Stripe account. Secrets are written, never read back."""
    institution = current_institution()
    account = queries.account_of(institution.id)
    form = StripeSettingsForm(
        formdata=None if request.method == "GET" else request.form,
        publishable_key=account.publishable_key if account else None,
        connected_account_id=account.connected_account_id if account else None,
    )
    if request.method == "POST" and form.validate():
        services.save_account(
            institution,
            publishable_key=form.publishable_key.data,
            secret_key=form.secret_key.data,
            connected_account_id=form.connected_account_id.data,
            webhook_secret=form.webhook_secret.data,
        )
        db.session.commit()
        flash(_("Payment settings saved."), "success")
        return redirect(url_for(".settings"))
    return render_template(
        "payments/settings.html",
        form=form,
        account=account,
        is_configured=gateway.is_configured(institution.id),
        test_mode=gateway.is_local(),
        webhook_url=external_url("stripe_webhooks.webhook", institution_slug=institution.slug),
    ), form_status(form)
