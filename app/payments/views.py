from __future__ import annotations

import logging

import stripe
from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from app.accounts.models import Role
from app.errors import form_status
from app.extensions import csrf, db, limiter
from app.jobs import enqueue_after_commit
from app.payments import gateway, services
from app.payments.forms import StripeSettingsForm
from app.payments.tasks import process_stripe_event
from app.tenancy import current_institution, institution_by_slug, require_role, staff_blueprint
from app.urls import external_url

log = logging.getLogger(__name__)

staff = staff_blueprint("payments", __name__)
webhooks = Blueprint("stripe_webhooks", __name__)
BLUEPRINTS = [staff, webhooks]


@webhooks.post("/stripe/webhook/<institution_slug>")
@csrf.exempt  # Stripe signs the body instead
@limiter.exempt
def webhook(institution_slug: str):
    """Verify and store a Stripe event, queue its processing, answer at once. A repeat is
    a 200 that changes nothing; a bad signature is a 400 that stores nothing."""
    institution = institution_by_slug(institution_slug) or abort(404)
    try:
        event = services.record_event(
            institution, request.get_data(), request.headers.get("Stripe-Signature")
        )
    except (ValueError, stripe.SignatureVerificationError) as error:
        log.warning("webhook for %s refused: %s", institution.slug, error)
        return jsonify(error="bad_signature"), 400
    if event is None:
        return jsonify(received=True, duplicate=True)
    enqueue_after_commit(process_stripe_event, institution.id, event.id)
    db.session.commit()
    return jsonify(received=True)


@staff.route("/settings/payments", methods=["GET", "POST"])
@require_role(Role.OWNER)
def settings():
    """The institution's Stripe account. Secrets are written, never read back."""
    institution = current_institution()
    account = gateway.account_for(institution.id)
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
        test_mode=gateway.is_test_mode(),
        webhook_url=external_url("stripe_webhooks.webhook", institution_slug=institution.slug),
    ), form_status(form)
