"""Every model, imported in one place for Alembic and the tests."""

from app.accounts.models import Invitation, Membership, User
from app.contacts.models import Contact, ContactEvent, ContactTag, ContactTouch, Student, Tag
from app.institutions.models import Institution
from app.notifications.models import OutboxMessage

__all__ = [
    "Contact",
    "ContactEvent",
    "ContactTag",
    "ContactTouch",
    "Institution",
    "Invitation",
    "Membership",
    "OutboxMessage",
    "Student",
    "Tag",
    "User",
]
