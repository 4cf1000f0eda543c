from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_user

from app.accounts import queries as account_queries
from app.accounts.models import MANAGERS
from app.errors import ServiceError, form_status, report
from app.extensions import db, limiter
from app.images import image_response
from app.institutions import services
from app.institutions.forms import SettingsForm, SignupForm
from app.tenancy import current_institution, public_blueprint, require_role, staff_blueprint

site = Blueprint("site", __name__)
staff = staff_blueprint("institutions", __name__)
public = public_blueprint("institutions_public", __name__)
BLUEPRINTS = [site, staff, public]


@site.get("/")
def index():
    """Signed-in staff go to their institution; visitors see what Cohort is."""
    if current_user.is_authenticated:
        memberships = account_queries.memberships_for_switcher(current_user)
        if memberships:
            return redirect(
                url_for("institutions.home", institution_slug=memberships[0].institution.slug)
            )
    return render_template("institutions/index.html")


@site.route("/signup", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["SIGNUP_LIMIT_PER_IP"], methods=["POST"])
def signup():
    form = SignupForm()
    form.fill_choices()
    if form.validate_on_submit():
        try:
            institution, owner = services.sign_up(
                name=form.name.data,
                slug=form.slug.data,
                timezone=form.timezone.data,
                currency=form.currency.data,
                locale=form.locale.data,
                owner_name=form.owner_name.data,
                email=form.email.data,
                password=form.password.data,
            )
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            login_user(owner)
            flash(_("Welcome to Cohort! %(name)s is ready.", name=institution.name), "success")
            return redirect(url_for("institutions.home", institution_slug=institution.slug))
    return render_template("institutions/signup.html", form=form), form_status(form)


# The staff home: what it shows is the dashboard's (app.dashboard.views.home, which
# create_app sets as this endpoint's view), so no domain imports the dashboard.
staff.add_url_rule("/", endpoint="home")


@staff.route("/settings", methods=["GET", "POST"])
@require_role(*MANAGERS)
def settings():
    institution = current_institution()
    form = SettingsForm(obj=institution)
    form.fill_choices()
    if form.validate_on_submit():
        try:
            services.update_settings(
                institution,
                name=form.name.data,
                timezone=form.timezone.data,
                currency=form.currency.data,
                locale=form.locale.data,
                country=form.country.data,
                contact_email=form.contact_email.data,
                contact_phone=form.contact_phone.data,
                address=form.address.data,
            )
            if form.remove_logo.data:
                services.remove_logo(institution)
            elif form.logo.data:
                services.set_logo(
                    institution, form.logo.data.read(), current_app.config["LOGO_MAX_BYTES"]
                )
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            flash(_("Settings saved."), "success")
            return redirect(url_for("institutions.settings"))
    return render_template("institutions/settings.html", form=form), form_status(form)


@public.get("/logo")
def logo():
    institution = current_institution()
    if not institution.has_logo:
        abort(404)
    return image_response(
        institution.logo, institution.logo_content_type, institution.logo_updated_at
    )
