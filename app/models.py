"""Every model, imported in one place for Alembic and the tests."""

from app.accounts.models import Invitation, Membership, User
from app.institutions.models import Institution
from app.notifications.models import OutboxMessage

__all__ = ["Institution", "Invitation", "Membership", "OutboxMessage", "User"]
