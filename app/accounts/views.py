from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    has_request_context,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from app.accounts import queries, services
from app.accounts.forms import (
    AcceptInvitationForm,
    ForgotPasswordForm,
    InviteForm,
    LoginForm,
    ResetPasswordForm,
    RoleForm,
)
from app.accounts.models import MANAGERS, Invitation, Membership, Role
from app.errors import ServiceError, form_status, report
from app.extensions import db, limiter
from app.forms import ConfirmForm
from app.tenancy import (
    bind_request,
    current_institution,
    current_membership,
    get_or_404,
    require_role,
    staff_blueprint,
)
from app.web import current_language, safe_next

auth = Blueprint("accounts", __name__)
team = staff_blueprint("team", __name__)
BLUEPRINTS = [auth, team]


@auth.app_context_processor
def institution_switcher():
    """The institutions the signed-in user belongs to, for every page's header."""
    if not has_request_context() or not current_user.is_authenticated:
        return {"switcher": []}
    return {"switcher": queries.memberships_for_switcher(current_user)}


@auth.app_template_global()
def role_label(value) -> str:
    return Role(value).label


def _account_key() -> str:
    return "login-account:" + services.normalise_email(request.form.get("email", ""))[:254]


# --- signing in and out ----------------------------------------------------------------------


@auth.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_IP"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"], methods=["POST"], key_func=_account_key
)
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = services.authenticate(form.email.data, form.password.data)
        if user is None:
            form.password.errors.append(_("The e-mail or password is wrong."))
        else:
            db.session.commit()
            login_user(user, remember=form.remember.data)
            return redirect(safe_next(request.args.get("next")) or url_for("site.index"))
    return render_template("accounts/login.html", form=form), form_status(form)


@auth.post("/logout")
def logout():
    form = ConfirmForm()
    if form.validate_on_submit():
        logout_user()
        flash(_("You are signed out."), "info")
    return redirect(url_for("accounts.login"))


@auth.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RESET_LIMIT_PER_IP"], methods=["POST"])
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        services.request_password_reset(form.email.data, current_language())
        db.session.commit()
        flash(
            _(
                "If an account exists for %(email)s, we have sent it a link to choose a new "
                "password.",
                email=form.email.data,
            ),
            "info",
        )
        return redirect(url_for("accounts.login"))
    return render_template("accounts/forgot_password.html", form=form), form_status(form)


@auth.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    try:
        services.user_for_reset_token(token)
    except ServiceError as error:
        return render_template("accounts/link_invalid.html", message=error.message), 410
    form = ResetPasswordForm()
    if form.validate_on_submit():
        user = services.reset_password(token, form.password.data)
        db.session.commit()
        login_user(user)
        flash(_("Your password has been changed."), "success")
        return redirect(url_for("site.index"))
    return render_template("accounts/reset_password.html", form=form), form_status(form)


# --- invitations (the invitee's side) --------------------------------------------------------


@auth.route("/invite/<token>", methods=["GET", "POST"])
def accept_invitation(token: str):
    institution = services.institution_of_invitation(token)
    if institution is not None:
        bind_request(institution)  # the invitation and the membership are its rows
    try:
        invitation = services.invitation_for_token(token)
    except ServiceError as error:
        return render_template("accounts/link_invalid.html", message=error.message), 410

    if current_user.is_authenticated:
        return _accept_as_signed_in(invitation)
    if queries.user_by_email(invitation.email) is not None:
        return render_template(
            "accounts/invitation.html", invitation=invitation, needs_login=True, form=None
        )
    form = AcceptInvitationForm()
    if form.validate_on_submit():
        try:
            user = services.accept_invitation_as_new_user(
                invitation, form.name.data, form.password.data
            )
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            login_user(user)
            return _joined(invitation)
    return render_template(
        "accounts/invitation.html", invitation=invitation, form=form, needs_login=False
    ), form_status(form)


def _accept_as_signed_in(invitation: Invitation):
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            services.accept_invitation(invitation, current_user)
        except ServiceError as error:
            report(error)
        else:
            db.session.commit()
            return _joined(invitation)
    wrong_account = services.normalise_email(current_user.email) != invitation.email
    return render_template(
        "accounts/invitation.html",
        invitation=invitation,
        form=form,
        needs_login=False,
        wrong_account=wrong_account,
    )


def _joined(invitation: Invitation):
    flash(_("You have joined %(name)s.", name=invitation.institution.name), "success")
    return redirect(url_for("institutions.home", institution_slug=invitation.institution.slug))


# --- the team (staff pages) ------------------------------------------------------------------


@team.get("/members")
def members():
    return _members_page(_invite_form())


def _invite_form() -> InviteForm:
    form = InviteForm()
    form.limit_roles(services.roles_invitable_by(current_membership()))
    return form


def _members_page(invite_form: InviteForm, status: int = 200):
    return render_template(
        "accounts/members.html",
        members=queries.institution_members(current_institution()),
        invitations=queries.pending_invitations(current_institution()),
        invite_form=invite_form,
        role_form=RoleForm(),
        confirm_form=ConfirmForm(),
        roles=list(Role),
    ), status


@team.post("/members/invite")
@require_role(*MANAGERS)
def invite():
    form = _invite_form()
    if form.validate_on_submit():
        try:
            services.invite_member(
                current_institution(), current_membership(), form.email.data, Role(form.role.data)
            )
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            flash(_("Invitation sent to %(email)s.", email=form.email.data), "success")
            return redirect(url_for("team.members"))
    return _members_page(form, 422)


@team.post("/members/<int:membership_id>/role")
@require_role(Role.OWNER)
def change_role(membership_id: int):
    membership = get_or_404(Membership, membership_id)
    form = RoleForm()
    if form.validate_on_submit():
        try:
            services.change_role(membership, Role(form.role.data))
        except ServiceError as error:
            report(error)
        else:
            db.session.commit()
            flash(
                _(
                    "%(name)s is now %(role)s.",
                    name=membership.user.name,
                    role=membership.role.label,
                ),
                "success",
            )
    else:
        flash(_("Choose a role from the list."), "error")
    return redirect(url_for("team.members"))


@team.post("/members/<int:membership_id>/remove")
@require_role(Role.OWNER)
def remove_member(membership_id: int):
    membership = get_or_404(Membership, membership_id)
    removing_self = membership.user_id == current_user.id
    name = membership.user.name
    try:
        services.remove_member(membership)
    except ServiceError as error:
        report(error)
        return redirect(url_for("team.members"))
    db.session.commit()
    flash(_("%(name)s has been removed.", name=name), "success")
    return redirect(url_for("site.index") if removing_self else url_for("team.members"))


@team.post("/invitations/<int:invitation_id>/resend")
@require_role(*MANAGERS)
def resend_invitation(invitation_id: int):
    invitation = get_or_404(Invitation, invitation_id)
    try:
        services.resend_invitation(current_institution(), invitation, current_user)
    except ServiceError as error:
        report(error)
    else:
        db.session.commit()
        flash(_("Invitation sent again to %(email)s.", email=invitation.email), "success")
    return redirect(url_for("team.members"))


@team.post("/invitations/<int:invitation_id>/revoke")
@require_role(*MANAGERS)
def revoke_invitation(invitation_id: int):
    invitation = get_or_404(Invitation, invitation_id)
    services.revoke_invitation(invitation)
    db.session.commit()
    flash(_("The invitation to %(email)s has been withdrawn.", email=invitation.email), "info")
    return redirect(url_for("team.members"))
