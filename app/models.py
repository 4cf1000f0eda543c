"""Every model, imported in one place for Alembic and the tests."""

from app.accounts.models import Invitation, Membership, User
from app.campaigns.models import FlashOrder, FlashReminder, FlashSale, GroupBuy, Team, TeamMember
from app.camps.models import Camp, CampChild, CampTask, CheckIn
from app.contacts.models import Contact, ContactEvent, ContactTag, ContactTouch, Student, Tag
from app.courses.models import Course, Enrolment, Lesson, Seat
from app.dashboard import models as dashboard_indexes  # noqa: F401 - its indexes on others' tables
from app.groups.models import (
    AnnouncementRead,
    Group,
    GroupInvite,
    GroupMember,
    MemberActivity,
    ModerationAction,
    Post,
    PostImage,
    PostReaction,
)
from app.institutions.models import Institution
from app.leads.models import (
    FormSourceStat,
    FormSubmission,
    Lead,
    LeadAssignee,
    LeadForm,
    LostReason,
)
from app.loyalty.models import (
    PointsEntry,
    PointsRules,
    Redemption,
    Referral,
    Reward,
)
from app.memberships.models import VipMembership, VipPurchase, VipTier
from app.notifications.models import MessageTemplate, OutboxMessage, ReminderSettings
from app.payments.models import Payment, PaymentTransition, StripeAccount, StripeEvent
from app.portal.models import SignInLink

__all__ = [
    "FlashOrder",
    "FlashReminder",
    "FlashSale",
    "Camp",
    "CampChild",
    "CampTask",
    "CheckIn",
    "PointsEntry",
    "PointsRules",
    "Redemption",
    "Referral",
    "Reward",
    "VipMembership",
    "VipPurchase",
    "VipTier",
    "AnnouncementRead",
    "MemberActivity",
    "PostImage",
    "PostReaction",
    "Group",
    "GroupInvite",
    "GroupMember",
    "ModerationAction",
    "Post",
    "GroupBuy",
    "Team",
    "TeamMember",
    "Payment",
    "PaymentTransition",
    "StripeAccount",
    "StripeEvent",
    "Course",
    "Enrolment",
    "Lesson",
    "MessageTemplate",
    "ReminderSettings",
    "Seat",
    "SignInLink",
    "Contact",
    "FormSourceStat",
    "FormSubmission",
    "Lead",
    "LeadAssignee",
    "LeadForm",
    "LostReason",
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
