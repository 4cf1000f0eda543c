from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from app.accounts.models import MANAGERS, Invitation, Membership, Role, User
from app.db import scoped_select, utcnow
from app.extensions import db


def user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))


def user_by_auth_token(token: str) -> User | None:
    return db.session.scalar(select(User).where(User.auth_token == token))


def membership_of(user: User, institution) -> Membership | None:
    return db.session.scalar(
        select(Membership)
        .where(Membership.user_id == user.id, Membership.institution_id == institution.id)
        .execution_options(all_institutions=True)
    )


def memberships_for_switcher(user: User) -> list[Membership]:
    """Every institution the user belongs to, for the header's switcher."""
    from app.institutions.models import Institution

    return list(
        db.session.scalars(
            select(Membership)
            .join(Membership.institution)
            .where(Membership.user_id == user.id)
            .options(joinedload(Membership.institution))
            .order_by(Institution.name)
            .execution_options(all_institutions=True)
        )
    )


def institution_members(institution) -> list[Membership]:
    return list(
        db.session.scalars(
            scoped_select(Membership, institution)
            .join(Membership.user)
            .options(joinedload(Membership.user))
            .order_by(Membership.role, User.name)
        )
    )


def owner_count(institution_id: int) -> int:
    query = (
        select(Membership)
        .where(Membership.institution_id == institution_id)
        .where(Membership.role == Role.OWNER)
    )
    return db.session.scalar(select(func.count()).select_from(query.subquery()))


def pending_invitations(institution) -> list[Invitation]:
    now = utcnow()
    return list(
        db.session.scalars(
            scoped_select(Invitation, institution)
            .where(
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > now,
            )
            .order_by(Invitation.created_at.desc())
        )
    )


def pending_invitation_for(institution, email: str) -> Invitation | None:
    now = utcnow()
    return db.session.scalar(
        scoped_select(Invitation, institution).where(
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
    )


def managers(institution) -> list[User]:
    """The institution's active owners and admins, owners first."""
    return list(
        db.session.scalars(
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .where(
                Membership.institution_id == institution.id,
                Membership.role.in_(MANAGERS),
                User.is_active.is_(True),
            )
            .order_by(Membership.role, User.id)
            .execution_options(all_institutions=True)
        )
    )


def institution_id_of_invitation(invitation_id) -> int | None:
    return db.session.scalar(
        select(Invitation.institution_id)
        .where(Invitation.id == invitation_id)
        .execution_options(all_institutions=True)
    )
