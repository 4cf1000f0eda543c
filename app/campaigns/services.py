"""Group buys (拼团): campaigns, teams, joining with a card hold (or a payment taken at
once), settlement and failure.

The rules that matter, and where they are kept:

- A team never has more than `team_size` members whose hold succeeded: a seat is claimed
  by one conditional UPDATE of the team's counter (`_claim_seat`), after the hold, so a
  race for the last seat has exactly one winner, and every loser's hold is released.
- Money moves only through the payments service: a join creates a payment with manual
  capture; success captures every hold (`settle_team`, safe to run twice and after a crash
  because the capture reads Stripe's state first); failure cancels every hold.
- A campaign that charges at once (`GroupBuy.is_charged_at_once`, for WeChat Pay and
  Alipay, which cannot hold money) takes each payment when the family joins: the seat is
  claimed when the payment succeeds (member `charged`), a team that fills needs no capture
  (`captured` without a call to Stripe), and a team that fails refunds every member in
  full (`refunded`; payments.refund reads Stripe's refunds first, so it is safe to run
  twice and after a crash). The member's mode is its payment's: `is_manual_capture`.
- Deadlines are rows (`Team.expires_at`): a job is scheduled for each team's deadline, and
  the sweeper finds any team whose job was lost.
- Lock order is team, then payment, wherever both are taken (failure, staff release), so
  two of them cannot deadlock; a join locks only its own payment before the team UPDATE.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from time import monotonic, sleep

import redis
import stripe
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from app import counters, pagecache
from app.accounts import queries as account_queries
from app.campaigns import queries, stock
from app.campaigns.models import (
    MAX_TEAM_HOURS,
    CampaignStatus,
    FlashOrder,
    FlashOrderStatus,
    FlashReminder,
    FlashSale,
    FlashSaleStatus,
    FlashTerms,
    GroupBuy,
    MemberStatus,
    ReleaseReason,
    Team,
    TeamMember,
    TeamStatus,
    new_code,
)
from app.contacts import services as contacts
from app.contacts.models import Contact, EventKind, FamilyDetails, SourceKind
from app.courses import services as courses
from app.courses.models import Course, EnrolmentSource
from app.db import after_commit, assign, created_in_this_transaction, savepoint, utcnow
from app.errors import ServiceError
from app.extensions import db
from app.groups import services as groups
from app.groups.models import JoinVia
from app.jobs import JobTimeout, enqueue, enqueue_after_commit
from app.leads import services as leads
from app.leads.models import Stage
from app.loyalty import services as loyalty
from app.loyalty.models import ReferralEvent
from app.notifications import services as notifications
from app.payments import services as payments
from app.payments.models import Payment, PaymentStatus
from app.tenancy import institution_by_id
from app.urls import external_url

log = logging.getLogger(__name__)

PURPOSE = "group_buy"
NUDGE_BEFORE = timedelta(hours=2)


# --- campaigns (staff) -----------------------------------------------------------------------

LOCKED_WHEN_LIVE = (
    "list_price_amount",
    "group_price_amount",
    "leader_price_amount",
    "team_size",
    "is_charged_at_once",  # families agreed to a hold, or to paying at once
)


def save_group_buy(institution, group_buy: GroupBuy | None, **values) -> GroupBuy:
    """Create a campaign (group_buy=None) or change one. Once published, its prices and
    team size are what families agreed to, so they cannot change."""
    course = db.session.get(Course, values.get("course_id"))
    if course is None or course.institution_id != institution.id:
        raise ServiceError(_l("Choose one of your courses."), field="course_id", code="course")
    if not 2 <= values["team_size"] <= 20:
        raise ServiceError(_l("A team has 2 to 20 families."), field="team_size", code="size")
    if not 1 <= values["team_hours"] <= MAX_TEAM_HOURS:
        raise ServiceError(
            _l(
                "A team's window is 1 to %(hours)s hours: card holds last about 7 days.",
                hours=MAX_TEAM_HOURS,
            ),
            field="team_hours",
            code="window",
        )
    if values["ends_at"] <= values["starts_at"]:
        raise ServiceError(_l("The end must be after the start."), field="ends_at", code="dates")
    if values["group_price_amount"] <= 0:
        raise ServiceError(
            _l("The group price must be more than zero."), field="group_price", code="price"
        )
    if values["group_price_amount"] > values["list_price_amount"]:
        raise ServiceError(
            _l("The group price cannot be above the list price."),
            field="group_price",
            code="price",
        )
    leader = values.get("leader_price_amount")
    if leader is not None and not 0 < leader <= values["group_price_amount"]:
        raise ServiceError(
            _l("The leader's price is more than zero and at most the group price."),
            field="leader_price",
            code="price",
        )
    if group_buy is not None and group_buy.status != CampaignStatus.DRAFT:
        changed = [
            name
            for name in LOCKED_WHEN_LIVE
            if name in values and getattr(group_buy, name) != values[name]
        ]
        if changed:
            raise ServiceError(
                _l(
                    "Prices, team size and when families pay cannot change once the campaign "
                    "is published."
                ),
                code="locked",
            )
    if group_buy is None:
        group_buy = GroupBuy(institution_id=institution.id, currency=institution.currency)
        db.session.add(group_buy)
    assign(group_buy, values)
    db.session.flush()
    pagecache.changed(institution.id, "group_buy", group_buy.code)
    return group_buy


def publish_group_buy(institution, group_buy: GroupBuy, actor) -> None:
    if group_buy.status != CampaignStatus.DRAFT:
        return
    if not payments.accepts_payments(institution.id):
        raise ServiceError(
            _l("Set up online payments before publishing a group buy."), code="payments_off"
        )
    if group_buy.ends_at <= utcnow():
        raise ServiceError(_l("This campaign's end has already passed."), code="past")
    group_buy.status = CampaignStatus.PUBLISHED
    group_buy.published_at = utcnow()
    pagecache.changed(group_buy.institution_id, "group_buy", group_buy.code)
    db.session.flush()
    log.info("group buy %s published by %s", group_buy.id, actor)


def end_group_buy(institution, group_buy: GroupBuy, actor=None) -> None:
    """Stop taking new teams. Teams already forming keep their deadline: families who paid
    a hold keep their chance to fill."""
    if group_buy.status != CampaignStatus.PUBLISHED:
        return
    group_buy.status = CampaignStatus.ENDED
    group_buy.ended_at = utcnow()
    pagecache.changed(group_buy.institution_id, "group_buy", group_buy.code)
    db.session.flush()
    log.info("group buy %s ended by %s", group_buy.id, actor or "its end date")


# --- joining ---------------------------------------------------------------------------------


def start_join(
    institution,
    group_buy: GroupBuy,
    team: Team | None,
    details: FamilyDetails,
    touch: contacts.Touch,
) -> TeamMember:
    """Open a team (team=None) or join one: the family is found or created, and a pending
    member with a pending payment is written (a hold, or a payment taken at once if the
    campaign charges at once). The caller commits, then takes the payment (payments'
    checkout); the seat is claimed only when the hold (or the payment) succeeds, in the
    payment's transition handler."""
    now = utcnow()
    if team is None:
        if not group_buy.is_open(now):
            raise ServiceError(_l("This group buy is not taking new teams."), code="closed")
    else:
        _check_joinable(group_buy, team, now)
    contact, student = contacts.find_family(institution, details, touch)
    new_family = created_in_this_transaction(contact)  # no places anywhere yet
    if not new_family:
        # The family's row lock serialises their own attempts, then their limits hold.
        contact = db.session.scalar(
            select(Contact).where(Contact.id == contact.id).with_for_update()
        )
        _check_family_limits(group_buy, team, contact)
    is_leader = team is None
    if team is None:
        team = _open_team(group_buy, now)
    member = TeamMember(
        institution_id=institution.id,
        team_id=team.id,
        contact_id=contact.id,
        student_id=student.id,
        is_leader=is_leader,
        price_amount=group_buy.price_for(is_leader),
    )
    if new_family:
        db.session.add(member)
        db.session.flush()
    else:
        try:
            with db.session.begin_nested():
                db.session.add(member)
        except IntegrityError:
            raise ServiceError(_l("You are already in this team."), code="already_member") from None
    payment = payments.start_payment(
        institution,
        purpose=PURPOSE,
        reference=member.id,
        amount=member.price_amount,
        contact_id=contact.id,
        manual_capture=not group_buy.is_charged_at_once,
    )
    member.payment_id = payment.id
    contacts.add_event(
        contact, EventKind.CAMPAIGN, {"action": "joined", "campaign": group_buy.title}
    )
    leads.ensure_lead(institution, contact, source=touch.utm_source or "group_buy")
    db.session.flush()
    return member


def _check_joinable(group_buy: GroupBuy, team: Team, now: datetime) -> None:
    if group_buy.status == CampaignStatus.DRAFT or team.group_buy_id != group_buy.id:
        raise ServiceError(_l("This team does not exist."), code="not_found")
    if team.status == TeamStatus.SUCCEEDED or (
        team.status == TeamStatus.FORMING and team.seats_left == 0
    ):
        raise ServiceError(
            _l("This team is already full. You can open a team of your own."), code="team_full"
        )
    if team.status == TeamStatus.FAILED or team.expires_at <= now:
        raise ServiceError(
            _l("This team's time is up. You can open a team of your own."), code="team_closed"
        )


def _check_family_limits(group_buy: GroupBuy, team: Team | None, contact: Contact) -> None:
    """Under the family's row lock: one place per team, and at most the campaign's number
    of teams per family."""
    active = queries.active_places(group_buy, contact)
    if team is not None and any(member.team_id == team.id for member in active):
        raise ServiceError(_l("You are already in this team."), code="already_member")
    if len({member.team_id for member in active}) >= group_buy.per_contact_limit:
        raise ServiceError(
            _l(
                "Each family can join %(n)s team(s) of this group buy.",
                n=group_buy.per_contact_limit,
            ),
            code="limit",
        )


def _open_team(group_buy: GroupBuy, now: datetime) -> Team:
    # The campaign's row lock serialises the openings, so the team limit holds.
    db.session.scalar(select(GroupBuy.id).where(GroupBuy.id == group_buy.id).with_for_update())
    if (
        group_buy.team_limit is not None
        and queries.teams_opened(group_buy.id, now) >= group_buy.team_limit
    ):
        raise ServiceError(_l("All the teams of this group buy are taken."), code="sold_out")
    team = Team(
        institution_id=group_buy.institution_id,
        group_buy_id=group_buy.id,
        team_size=group_buy.team_size,
        opened_at=now,
        expires_at=group_buy.team_deadline(now),
    )
    db.session.add(team)
    db.session.flush()
    enqueue_after_commit(
        "campaigns.fail_team",
        team.institution_id,
        team.id,
        job_id=f"fail-team-{team.id}",
        at=team.expires_at,
    )
    return team


@payments.on_transition(PURPOSE)
def _on_payment(payment: Payment, previous: PaymentStatus, cause: str) -> None:
    """Keep the member in step with their payment, whatever told us about it."""
    member = db.session.scalar(
        select(TeamMember)
        .where(TeamMember.payment_id == payment.id)
        .execution_options(populate_existing=True)
    )
    if member is None:
        return
    institution = institution_by_id(member.institution_id)
    if payment.status == PaymentStatus.AUTHORISED:
        _claim_seat(institution, member)
    elif payment.status == PaymentStatus.CAPTURED:
        if member.status == MemberStatus.AUTHORISED:
            _capture_place(member)
        elif member.status == MemberStatus.PENDING and not payment.is_manual_capture:
            _claim_seat(institution, member)  # charged at once
        elif member.status in (MemberStatus.CHARGED, MemberStatus.CAPTURED):
            pass
        else:  # money taken for a place no longer held (captured at Stripe by hand)
            payments.refund(payment, "captured for a released team place")
    elif payment.status == PaymentStatus.RELEASED:
        if member.status == MemberStatus.AUTHORISED:  # released behind our back: expired
            _leave_team(institution, member, ReleaseReason.HOLD_EXPIRED)
        elif member.status == MemberStatus.PENDING:
            _decide(member, MemberStatus.RELEASED, ReleaseReason.ABANDONED)
    elif payment.status == PaymentStatus.FAILED:
        if member.status == MemberStatus.PENDING:
            reason = ReleaseReason.DECLINED if "declined" in cause else ReleaseReason.ABANDONED
            _decide(member, MemberStatus.FAILED, reason)
            _close_if_abandoned(member.team)
        elif member.status == MemberStatus.AUTHORISED:
            _decide(member, MemberStatus.FAILED, ReleaseReason.CAPTURE_FAILED)
            _alert_staff_capture_failed(institution, member, payment)
    _pages_changed(member.team)
    db.session.flush()


def _pages_changed(team: Team) -> None:
    """The team's page and its campaign's page show the change (app.pagecache)."""
    pagecache.changed(team.institution_id, "team", team.code)
    pagecache.changed(team.institution_id, "group_buy", team.group_buy.code)


def _decide(member: TeamMember, status: MemberStatus, reason: ReleaseReason | None = None) -> bool:
    """Move the member to `status` if `models.MEMBER_TRANSITIONS` allows it from where it
    is; returns whether it moved."""
    if not member.can_become(status):
        log.warning("member %s: %s -> %s refused", member.id, member.status, status)
        return False
    member.status = status
    member.release_reason = reason
    member.decided_at = utcnow()
    return True


def _capture_place(member: TeamMember) -> None:
    """authorised | charged -> captured: the family has paid for a team that filled, and
    the campaign counts one more seat sold."""
    if not _decide(member, MemberStatus.CAPTURED):
        return
    db.session.execute(
        update(GroupBuy)
        .where(GroupBuy.id == member.team.group_buy_id)
        .values(seats_sold=GroupBuy.seats_sold + 1)
        .execution_options(synchronize_session=False)
    )


def _settle_charged(member: TeamMember) -> None:
    """charged -> captured, under the member's row lock (a settlement run twice at once
    counts the seat once): paid when the family joined, so nothing is asked of Stripe."""
    member = db.session.scalar(
        select(TeamMember)
        .where(TeamMember.id == member.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if member.status == MemberStatus.CHARGED:
        _capture_place(member)


def _refund_place(member: TeamMember, reason: ReleaseReason, cause: str) -> None:
    """pending | charged -> refunded: a family that paid at once gets its money back in
    full (the team failed, or it filled or closed while they paid). If Stripe cannot be
    reached, gateway.Unavailable rolls the whole transaction back and the caller's job (or
    the payment's reconciliation) runs again; the refunds Stripe made in the meantime are
    read back, not made twice (payments.refund)."""
    if _decide(member, MemberStatus.REFUNDED, reason):
        payments.refund(member.payment, cause)


def _claim_seat(institution, member: TeamMember) -> None:
    """The hold (or the payment taken at once) succeeded: take a seat in the team with one
    conditional UPDATE, or, if the team filled (or closed) first, release the hold (refund
    the payment) at once."""
    if member.status != MemberStatus.PENDING:
        return
    _load_what_messages_show(member)  # before the claim: the team's row is locked from it
    now = utcnow()
    count = db.session.execute(
        update(Team)
        .where(
            Team.id == member.team_id,
            Team.status == TeamStatus.FORMING,
            Team.member_count < Team.team_size,
            Team.expires_at > now,
        )
        .values(member_count=Team.member_count + 1)
        .returning(Team.member_count)
        .execution_options(synchronize_session=False)
    ).scalar()
    team = member.team
    if count is not None:  # claimed: the team is forming, with `count` members now
        set_committed_value(team, "member_count", count)
    else:
        db.session.refresh(team)  # full or closed: as it is now
        reason = ReleaseReason.TEAM_FULL if team.seats_left == 0 else ReleaseReason.TEAM_FAILED
        if member.is_charged_at_once:
            _refund_place(member, reason, f"team {team.code}: {reason.value}")
        else:
            _decide(member, MemberStatus.RELEASED, reason)
            _release_hold(member, f"team {team.code}: {reason.value}")
        _notify(institution, member, "hold_released", {"reason": reason.value})
        _close_if_abandoned(team)
        return
    _decide(member, MemberStatus.CHARGED if member.is_charged_at_once else MemberStatus.AUTHORISED)
    # A place held in a team is a booking: the family's lead moves on (enrolled once paid).
    leads.advance_lead(member.contact, Stage.TRIAL_BOOKED)
    _notify(institution, member, "team_joined")
    loyalty.referral_after_commit(
        institution, member.contact, ReferralEvent.TEAM_JOIN, f"campaign:{team.group_buy.code}"
    )
    if count < team.team_size:
        _schedule_nudge(institution, team, after=member)
        return
    team.status = TeamStatus.SUCCEEDED
    team.succeeded_at = now
    notifications.cancel_topic(team.institution_id, team.topic)
    db.session.flush()
    enqueue_after_commit(
        "campaigns.settle_team", team.institution_id, team.id, job_id=f"settle-team-{team.id}"
    )
    log.info("team %s filled (%s members)", team.id, count)


def _load_what_messages_show(member: TeamMember) -> None:
    """Load the rows the member's and the leader's messages read (`_context`), so that
    nothing but writes follows the seat claim."""
    team = member.team
    for each in {member, *(m for m in team.members if m.is_leader)}:
        each.contact, each.student  # noqa: B018 (loaded for later)
    team.group_buy.course  # noqa: B018


def _close_if_abandoned(team: Team) -> None:
    """A team whose opener never got a hold (declined, abandoned) closes quietly."""
    if team.status != TeamStatus.FORMING or team.member_count > 0:
        return
    if any(m.is_active for m in team.members):
        return
    team.status = TeamStatus.FAILED
    team.failed_at = utcnow()


def _release_hold(member: TeamMember, cause: str) -> None:
    """Cancel the member's hold now; if Stripe cannot be reached, a job keeps trying (and
    reconciliation would find it too)."""
    try:
        payments.release(member.payment, cause)
    except stripe.StripeError:
        log.exception("could not release payment %s now; queued", member.payment_id)
        enqueue_after_commit(
            "payments.release_payment", member.institution_id, member.payment_id, cause
        )


def _leave_team(institution, member: TeamMember, reason: ReleaseReason) -> None:
    """An authorised member gives up their seat (staff release, an expired hold)."""
    _decide(member, MemberStatus.RELEASED, reason)
    team = member.team
    if team.status == TeamStatus.FORMING:
        db.session.execute(
            update(Team)
            .where(Team.id == team.id, Team.member_count > 0)
            .values(member_count=Team.member_count - 1)
            .execution_options(synchronize_session=False)
        )
        db.session.refresh(team)
        _schedule_nudge(institution, team, after=member)
    _notify(institution, member, "hold_released", {"reason": reason.value})


def release_member(institution, member: TeamMember, actor) -> None:
    """Staff release one family's hold in a forming team: their seat frees up and nothing
    is taken from their card."""
    team = db.session.scalar(
        select(Team)
        .where(Team.id == member.team_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    db.session.refresh(member)
    if team.status != TeamStatus.FORMING or member.status != MemberStatus.AUTHORISED:
        raise ServiceError(_l("Only a held place in a forming team can be released."), code="state")
    _leave_team(institution, member, ReleaseReason.STAFF)
    _release_hold(member, f"released by {actor.email if actor else 'staff'}")
    _pages_changed(team)
    log.info("member %s of team %s released by %s", member.id, team.id, actor)


# --- deadlines and settlement ----------------------------------------------------------------


def fail_team(institution, team: Team, now: datetime | None = None) -> bool:
    """At the deadline, a team short of members fails: every hold is cancelled (nothing
    is taken), every payment taken at once is refunded in full, and every family is told.
    Returns whether it failed now (so a second run changes nothing). Raises
    gateway.Unavailable if Stripe cannot refund: the job runs again, and a refund Stripe
    already made is read back rather than made twice."""
    now = now or utcnow()
    team = db.session.scalar(
        select(Team)
        .where(Team.id == team.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if team.status != TeamStatus.FORMING or team.expires_at > now:
        return False
    team.status = TeamStatus.FAILED
    team.failed_at = now
    _pages_changed(team)
    notifications.cancel_topic(team.institution_id, team.topic)
    for member in team.members:
        if member.status == MemberStatus.AUTHORISED:
            _decide(member, MemberStatus.RELEASED, ReleaseReason.TEAM_FAILED)
            _release_hold(member, f"team {team.code} failed")
        elif member.status == MemberStatus.CHARGED:
            _refund_place(member, ReleaseReason.TEAM_FAILED, f"team {team.code} failed")
        else:
            continue  # a pending payer's claim will fail and release (refund) their own
        _notify(institution, member, "team_failed")
        contacts.add_event(
            member.contact,
            EventKind.CAMPAIGN,
            {"action": "failed", "campaign": team.group_buy.title},
        )
    db.session.flush()
    log.info("team %s failed at its deadline with %s members", team.id, team.member_count)
    return True


def settle_team(institution, team: Team) -> bool:
    """Capture every hold of a team that filled, enrol each child and tell each family.
    A member who paid at once was charged when joining: nothing more is taken.

    Safe to run twice and after a crash: a capture reads Stripe's state first (a hold a
    killed worker already captured is recorded, not captured again), enrolment happens
    once per child, and messages have dedupe keys. A capture that fails marks that member
    failed and alerts staff without stopping the others. Returns whether the team is
    fully settled."""
    db.session.refresh(team)
    if team.status != TeamStatus.SUCCEEDED:
        return False
    cause = f"team {team.code} filled"
    for member in team.members:
        if member.status == MemberStatus.AUTHORISED:
            payments.capture(member.payment, cause)
            db.session.refresh(member)
        elif member.status == MemberStatus.CHARGED:
            _settle_charged(member)
        if member.status == MemberStatus.CAPTURED and member.enrolment_id is None:
            _enrol(institution, team, member)
    waiting = (MemberStatus.AUTHORISED, MemberStatus.CHARGED)
    if any(member.status in waiting for member in team.members):
        return False
    team.settled_at = team.settled_at or utcnow()
    _pages_changed(team)
    db.session.flush()
    return True


def _enrol(institution, team: Team, member: TeamMember) -> None:
    group_buy = team.group_buy
    member.enrolment_id, group = _enrol_buyer(
        institution,
        group_buy.course,
        member,
        "succeeded",
        group_buy.title,
        f"campaign:{group_buy.code}",
    )
    _notify(institution, member, "team_succeeded", group)


def _enrol_buyer(institution, course, buyer, action: str, title: str, source: str):
    """What a campaign's paid place gives the family (a team that filled, a flash-sale
    seat paid): the child enrolled in the course's upcoming lessons, the lead enrolled,
    the course's class groups joined, a timeline event, the referrer credited. Returns
    (the enrolment's id, the group offer for the confirmation message)."""
    enrolment = courses.enrol_in_upcoming(
        institution, course, buyer.contact, buyer.student, EnrolmentSource.CAMPAIGN
    )
    leads.advance_lead(buyer.contact, Stage.ENROLLED)
    groups.join_course_groups(institution, course, buyer.contact, JoinVia.CAMPAIGN)
    contacts.add_event(buyer.contact, EventKind.CAMPAIGN, {"action": action, "campaign": title})
    loyalty.referral_after_commit(institution, buyer.contact, ReferralEvent.PAYMENT, source)
    return enrolment.id, groups.offer_context(institution, course, buyer.contact)


def end_campaigns_past_their_end(now: datetime) -> int:
    """Mark every institution's published campaigns whose end has passed as ended (the
    sweeper's doing: a campaign's end needs no job of its own)."""
    ended = queries.group_buys_past_end(now)
    for group_buy in ended:
        end_group_buy(None, group_buy)
    return len(ended)


# --- messages --------------------------------------------------------------------------------


VIEWS = "group_buy_views"  # the app.counters kind of campaign and team page views


def view_of(code: str) -> counters.Count:
    """What a view of a campaign's page or one of its teams' adds to (in Redis;
    `add_views` writes it back)."""
    return counters.Count(VIEWS, code, ("total",))


@counters.writes_back(VIEWS)
def add_views(institution, counts: dict[str, dict[str, int]]) -> None:
    """Add counted page views ({campaign code: {"total": n}}) to the campaigns."""
    counters.add_view_totals(institution, GroupBuy, counts)


def team_url(team: Team) -> str:
    institution = institution_by_id(team.institution_id)
    return external_url(
        "campaigns_public.team_page",
        institution_slug=institution.slug,
        code=team.group_buy.code,
        team_code=team.code,
    )


def _context(team: Team, member: TeamMember | None = None) -> dict:
    group_buy = team.group_buy
    context = {
        "campaign_title": group_buy.title,
        "course_title": group_buy.course.title,
        "team_size": team.team_size,
        "seats_left": team.seats_left,
        "expires_at": team.expires_at.isoformat(),
        "team_link": team_url(team),
        "currency": group_buy.currency,
    }
    if member is not None:
        context["child_name"] = member.student.name
        context["amount_minor"] = member.price_amount
        # The campaign's mode, locked once it is published, is every member's.
        context["paid_at_once"] = group_buy.is_charged_at_once
    return context


def _notify(institution, member: TeamMember, kind: str, extra: dict | None = None) -> None:
    notifications.notify_contact(
        institution,
        member.contact,
        kind,
        {**_context(member.team, member), **(extra or {})},
        dedupe_key=f"{kind}:member:{member.id}",
        channels_=["email", "sms", "inapp"],
    )


def _schedule_nudge(institution, team: Team, after: TeamMember) -> None:
    """Two hours before the deadline, remind the leader how many seats are left; moved
    every time a seat is taken or freed, so the number in it is the current one."""
    notifications.cancel_topic(team.institution_id, team.topic)
    send_at = team.expires_at - NUDGE_BEFORE
    leader = next((m for m in team.members if m.is_leader), None)
    if leader is None or not leader.is_active or send_at <= utcnow() or team.seats_left == 0:
        return
    notifications.notify_contact(
        institution,
        leader.contact,
        "team_nudge",
        _context(team, leader),
        dedupe_key=f"team-nudge:{team.id}:after-{after.id}-{after.status.value}",
        send_at=send_at,
        topic=team.topic,
        channels_=["email", "sms", "inapp"],
    )


def _alert_staff_capture_failed(institution, member: TeamMember, payment: Payment) -> None:
    team = member.team
    for user in account_queries.managers(institution):
        notifications.queue_email(
            institution_id=institution.id,
            recipient=user.email,
            template="capture_failed",
            context={
                "name": user.name,
                "campaign_title": team.group_buy.title,
                "parent_name": member.contact.parent_name,
                "phone": member.contact.phone,
                "reason": payment.failure_message or "",
                "action_url": external_url(
                    "campaigns.campaign_detail",
                    institution_slug=institution.slug,
                    group_buy_id=team.group_buy_id,
                ),
            },
            locale=institution.locale,
            dedupe_key=f"capture-failed:{member.id}:{user.id}",
        )


# --- flash sales (秒杀) ----------------------------------------------------------------------

FLASH_PURPOSE = "flash_sale"
# A payment may still arrive a little after its order expired (a card confirmed on the
# phone as the deadline passed): it is refunded, and the family told why.
FLASH_PAYMENT_GRACE = timedelta(minutes=5)
FLASH_REMIND_BEFORE = timedelta(minutes=5)
LOCKED_WHEN_PUBLISHED = ("sale_price_amount", "list_price_amount", "course_id", "per_family_limit")
SOLD_OUT = _l("Sorry, every seat is taken.")
FLASH_CLOSED = _l("This sale is not open right now.")
OVER_LIMIT = _l("Your family already has as many seats in this sale as a family may buy.")
BUSY = _l("Too many people at once. Please try again.")


def save_flash_sale(institution, sale: FlashSale | None, **values) -> FlashSale:
    """Create a flash sale (`sale` None) or change one. Once published its prices, course
    and limit are locked, and its stock can be raised but never lowered below the seats
    sold or reserved."""
    if values["ends_at"] <= values["starts_at"]:
        raise ServiceError(_l("The sale ends before it starts."), field="ends_at", code="dates")
    course = db.session.get(Course, values.get("course_id"))
    if course is None or course.institution_id != institution.id:
        raise ServiceError(_l("Choose one of your courses."), field="course_id", code="course")
    if values["sale_price_amount"] > values["list_price_amount"]:
        raise ServiceError(
            _l("The sale price is above the list price."),
            field="sale_price_amount",
            code="price",
        )
    if sale is None:
        sale = FlashSale(institution_id=institution.id, currency=institution.currency)
        db.session.add(sale)
    else:
        sale = _locked_sale(sale.id)
        if sale.is_published:
            changed = [
                name for name in LOCKED_WHEN_PUBLISHED if getattr(sale, name) != values[name]
            ]
            if changed:
                raise ServiceError(
                    _l("A published sale's prices, course and limit cannot change."),
                    field=changed[0],
                    code="locked",
                )
        if values["stock"] < sale.sold + sale.reserved:
            raise ServiceError(
                _l(
                    "%(n)s seats are sold or waiting for payment: the stock cannot be lower.",
                    n=sale.sold + sale.reserved,
                ),
                field="stock",
                code="stock",
            )
    stock_changed = sale.id is not None and values["stock"] != sale.stock
    assign(sale, values)
    db.session.flush()
    if stock_changed:
        stock_after_commit(sale.id)
    _flash_page_changed(sale)
    return sale


def publish_flash_sale(institution, sale: FlashSale) -> None:
    """Draft → scheduled: the page is up, and the reminders are set for its start."""
    sale = _locked_sale(sale.id)
    if sale.status != FlashSaleStatus.DRAFT:
        return
    if not payments.accepts_payments(institution.id):
        raise ServiceError(
            _l("Set up online payments before publishing a flash sale."), code="payments_off"
        )
    if sale.ends_at <= utcnow():
        raise ServiceError(_l("This sale's end has already passed."), code="past")
    sale.status = FlashSaleStatus.SCHEDULED
    sale.published_at = utcnow()
    db.session.flush()
    _flash_page_changed(sale)
    _counters_after_commit(sale)


def _counters_after_commit(sale: FlashSale) -> None:
    """Build the sale's Redis counters once this transaction commits, so the crowd's first
    taps find them (else the first tap builds them, and the others wait for it)."""
    terms, counts = FlashTerms.of(sale), queries.flash_counts(sale)

    def build() -> None:
        with suppress(redis.RedisError):  # the first tap builds them then
            stock.rebuild(terms, lambda: counts)

    after_commit(db.session(), build)


def end_flash_sale(institution, sale: FlashSale) -> None:
    """Staff end a sale early: no new attempt is taken; orders waiting keep their
    deadline."""
    sale = _locked_sale(sale.id)
    if sale.status != FlashSaleStatus.SCHEDULED:
        return
    sale.status = FlashSaleStatus.ENDED
    sale.ended_at = utcnow()
    db.session.flush()
    _flash_page_changed(sale)


def _locked_sale(sale_id: int) -> FlashSale:
    return db.session.scalar(
        select(FlashSale)
        .where(FlashSale.id == sale_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def flash_terms(institution, code: str) -> FlashTerms | None:
    """The sale's terms for deciding an attempt, kept in this process's memory while the
    sale's page version stands (app.pagecache.kept_terms). None if there is no such
    sale."""

    def read() -> FlashTerms | None:
        sale = queries.flash_sale_by_code(institution, code)
        return FlashTerms.of(sale) if sale is not None else None

    return pagecache.kept_terms(institution.id, "flash_sale", code, read)


def _flash_page_changed(sale: FlashSale) -> None:
    """The sale's public page is out of date once this transaction commits."""
    pagecache.changed(sale.institution_id, "flash_sale", sale.code)


def stock_after_commit(sale_id: int) -> None:
    """The Redis counters are rebuilt from the database once this transaction commits."""
    after_commit(db.session(), lambda: stock.forget(sale_id))


def _reserve(
    sale: FlashSale | FlashTerms, phone: str, attempt_key: str, now, order: stock.QueuedOrder
):
    """The Lua script's answer. Only when Redis has lost the sale's counters (the script
    says so) are they built from the database, and the attempt decided again: the crowd's
    attempts cost one round trip."""
    now_ms, queued = int(now.timestamp() * 1000), order.dumps()
    answer = stock.reserve(sale, phone, attempt_key, now_ms, order.code, queued)
    if answer[0] == stock.Outcome.NOT_READY:
        stock.ensure_ready(sale, lambda: queries.flash_counts(sale))
        answer = stock.reserve(sale, phone, attempt_key, now_ms, order.code, queued)
    return answer


@dataclass(frozen=True)
class SeatTaken:
    """A seat an attempt holds: its order's code, and whether this attempt took it now
    (not a repeated tap of an earlier one)."""

    order_code: str
    new: bool


def take_flash_seat(
    institution,
    sale: FlashSale | FlashTerms,
    details: FamilyDetails,
    touch: contacts.Touch,
    attempt_key: str,
) -> SeatTaken:
    """A family's attempt to buy a seat, decided by Redis in one Lua script (the window, a
    seat left, the family's limit, a repeated tap) that also queues the order. The request
    asks nothing of the database: a writer job writes the order (`write_flash_orders`),
    and the family's page shows it once written, or why the database refused it."""
    now = utcnow()
    if not sale.is_open(now):
        raise ServiceError(FLASH_CLOSED, code="closed")
    phone = contacts.normalise_phone(institution, details.phone)
    order = stock.QueuedOrder(
        code=new_code(),
        attempt_key=attempt_key,
        phone=phone,
        reserved_at=now.isoformat(),
        details=_values(details),
        touch={**_values(touch), "kind": touch.kind.value},
    )
    outcome, code, wake = _reserve(sale, phone, attempt_key, now, order)
    if outcome == stock.Outcome.REPEATED:
        return SeatTaken(code, new=False)
    if outcome != stock.Outcome.RESERVED:
        raise ServiceError(*_REFUSALS[outcome])
    if wake:
        _wake_writer(institution.id, sale.id)
    return SeatTaken(code, new=True)


def _values(flat) -> dict:
    """A flat dataclass's fields (dataclasses.asdict deep-copies each: a fifth of a
    millisecond of every winning tap)."""
    return {field.name: getattr(flat, field.name) for field in fields(flat)}


def _wake_writer(institution_id: int, sale_id: int) -> None:
    try:
        job_id = writer_job_id(sale_id)
        enqueue("campaigns.write_flash_orders", institution_id, sale_id, job_id=job_id)
    except redis.RedisError:
        # Queued with the seat, so not lost: the sweeper wakes a writer for it.
        log.exception("flash sale %s: could not wake its writer", sale_id)


def writer_job_id(sale_id: int) -> str:
    return f"flash-writer-{sale_id}"


_REFUSALS = {
    stock.Outcome.SOLD_OUT: (SOLD_OUT, None, "sold_out"),
    stock.Outcome.OVER_LIMIT: (OVER_LIMIT, None, "over_limit"),
    stock.Outcome.CLOSED: (FLASH_CLOSED, None, "closed"),
    stock.Outcome.NOT_READY: (BUSY, None, "busy"),
}
WRITE_BATCH = 50  # queued orders written in one transaction


def write_flash_orders(institution, sale_id: int) -> int:
    """Write the sale's queued orders, oldest first, WRITE_BATCH to a transaction, until
    the queue is empty; one writer a sale at a time (another that finds the lock taken
    leaves the queue to it). An order the database refuses (the family's limit, no seat
    left by its count: Redis was rebuilt while the order waited) gives its seat back to
    Redis and its refusal to the family's page. Written orders leave the queue only once
    committed, so a writer that dies leaves them to the next, which skips any already
    written. Returns how many orders this writer wrote."""
    sale = db.session.get(FlashSale, sale_id)
    if sale is None:
        return 0
    written = 0
    with stock.writing(sale_id) as token:
        if token is not None:
            _after_the_rush(sale_id)
        while token is not None:
            batch = stock.queued(sale_id, WRITE_BATCH)
            if not batch:
                if stock.finish(sale_id, token):
                    break
                continue
            done = queries.flash_order_codes(sale, [queued.code for queued in batch])
            # (an order already written: a writer that died after its commit wrote it)
            todo = [queued for queued in batch if queued.code not in done]
            refused = _write_batch(institution, sale, todo)
            db.session.commit()
            stock.written(sale_id, len(batch))
            written += len(batch) - len(done) - len(refused)
            for queued, reason, give_back in refused:
                stock.refuse(sale_id, queued.code, reason)
                give_back()
    return written


def _after_the_rush(sale_id: int) -> None:
    """Wait while the crowd is still tapping: at a sale's start the web processes answer
    the taps with the machine to themselves, and the orders are written after, in fuller
    batches. Waits FLASH_WRITER_QUIET_SECONDS at a time until a wait adds no attempt to the
    sale's count (every tap counts: one that takes a seat, and once the seats are gone
    the crowd's refused taps), FLASH_WRITER_WAIT_SECONDS in all at most. A family sees its
    order that much later (its page says meanwhile that the seat is taken, and its minutes
    to pay count from the tap)."""
    quiet = current_app.config["FLASH_WRITER_QUIET_SECONDS"]
    if quiet:
        # Taps refused from memory reach the count once a web process adds them up: a
        # shorter wait would take the gap between two additions for a quiet crowd.
        quiet = max(quiet, 2 * pagecache.COUNTS_ADDED_EVERY)
    # (well inside the writer's lock, which the batches renew)
    most = min(current_app.config["FLASH_WRITER_WAIT_SECONDS"], stock.WRITER_LOCK_SECONDS / 2)
    deadline = monotonic() + most
    seen = stock.attempts(sale_id)
    while quiet and (left := deadline - monotonic()) > 0:
        sleep(min(quiet, left))
        before, seen = seen, stock.attempts(sale_id)
        if seen == before:
            return


def _write_batch(institution, sale: FlashSale, todo: list[stock.QueuedOrder]) -> list[tuple]:
    """Write the orders one after the other, then claim all their seats in one conditional
    UPDATE of the sale, the last statement before the commit, so the sale's row (which
    payments and expiries update too) is locked for milliseconds, not for the batch. No
    savepoint stands between the orders (one an order cost a third of its writing): should
    one of them be refused or fail (the family's limit by the database's count, a sale
    ended as it sold), or the database not have the seats for all of them (it and Redis
    disagree: a rebuild raced an order), the batch is rolled back and written again order
    by order, each in a savepoint of its own and claiming its own seat. Returns (order,
    refusal, give back) for each order refused."""
    if not todo:
        return []
    if _write_all(institution, sale, todo) and _claim_seats(sale.id, len(todo)):
        return []
    db.session.rollback()
    return [
        (queued, reason, _giving_back(sale, queued.phone, queued.attempt_key))
        for queued in todo
        if (reason := _write_queued(institution, sale, queued)) is not None
    ]


def _write_all(institution, sale: FlashSale, todo: list[stock.QueuedOrder]) -> bool:
    """Every order, none claiming its seat; False at the first that cannot be written."""
    try:
        for queued in todo:
            _write_flash_order(institution, sale, *_family_of(queued), queued, claim=False)
    except JobTimeout:
        raise
    except Exception:  # a refusal or a failure: written again order by order, which tells
        return False
    return True


def _claim_seats(sale_id: int, seats: int) -> bool:
    """Take `seats` of the sale's stock, unless fewer are left: the database refuses to
    oversell whatever Redis said."""
    return bool(
        db.session.execute(
            update(FlashSale)
            .where(
                FlashSale.id == sale_id,
                FlashSale.sold + FlashSale.reserved + seats <= FlashSale.stock,
            )
            .values(reserved=FlashSale.reserved + seats)
            .execution_options(synchronize_session=False)
        ).rowcount
    )


def _family_of(queued: stock.QueuedOrder) -> tuple[FamilyDetails, contacts.Touch]:
    touch = contacts.Touch(**{**queued.touch, "kind": SourceKind(queued.touch["kind"])})
    return FamilyDetails(**queued.details), touch


def _write_queued(institution, sale: FlashSale, queued: stock.QueuedOrder) -> str | None:
    """Write one queued order, with its seat, in a savepoint; None if written, else the
    refusal's code."""
    try:
        with savepoint(db.session()):
            _write_flash_order(institution, sale, *_family_of(queued), queued, claim=True)
    except ServiceError as error:
        return error.code or "busy"
    except JobTimeout:  # the job's time is up: its orders stay queued for the next writer
        raise
    except Exception:
        # A queued order this code cannot write must not stop the ones behind it.
        log.exception("flash sale %s: order %s could not be written", sale.id, queued.code)
        return "busy"
    return None


def _giving_back(sale: FlashSale, phone: str, attempt_key: str) -> Callable[[], None]:
    """What puts the seat an attempt took in Redis on sale again, and makes the web
    processes forget a "sold out" they remember (app.pagecache.remember_refusal). Reads
    nothing from the database: it may run after a rollback."""
    sale_id, institution_id, code = sale.id, sale.institution_id, sale.code

    def give_back() -> None:
        if stock.give_back(sale_id, phone, attempt_key):
            pagecache.changed_now(institution_id, "flash_sale", code)

    return give_back


def _write_flash_order(
    institution, sale, details, touch, queued: stock.QueuedOrder, claim: bool
) -> FlashOrder:
    """The order, its payment and the family's lead; and its seat if `claim` (else the
    caller claims the batch's seats at once: `_claim_seats`)."""
    reserved_at = datetime.fromisoformat(queued.reserved_at)
    if sale.ended_at is not None and reserved_at >= sale.ended_at:
        # Staff ended the sale as the seat was taken: the web process that took it had
        # not heard yet (its terms are kept until the notice comes, milliseconds).
        raise ServiceError(FLASH_CLOSED, code="closed")
    contact, student = contacts.find_family(institution, details, touch)
    if not created_in_this_transaction(contact):
        # The family's row lock serialises its own orders (one writer a sale, but a
        # family's orders of other sales, and its payments, take it too).
        db.session.scalar(select(Contact.id).where(Contact.id == contact.id).with_for_update())
    # The database's count of its seats holds the limit whatever Redis said (counted for
    # a family new in this transaction too: an earlier order of the batch may be theirs).
    if queries.family_flash_seats(sale, contact) >= sale.per_family_limit:
        raise ServiceError(OVER_LIMIT, code="over_limit")
    order = FlashOrder(
        institution_id=institution.id,
        flash_sale_id=sale.id,
        contact_id=contact.id,
        student_id=student.id,
        code=queued.code,
        attempt_key=queued.attempt_key,
        phone=queued.phone,
        price_amount=sale.sale_price_amount,
        pay_by=reserved_at + timedelta(minutes=sale.pay_minutes),
    )
    db.session.add(order)
    db.session.flush()
    payment = payments.start_payment(
        institution,
        purpose=FLASH_PURPOSE,
        reference=order.id,
        amount=order.price_amount,
        contact_id=contact.id,
        manual_capture=False,
        pay_by=order.pay_by + FLASH_PAYMENT_GRACE,
    )
    order.payment_id = payment.id
    leads.ensure_lead(institution, contact, source=touch.utm_source or "flash_sale")
    if claim and not _claim_seats(sale.id, 1):  # the hot row, last
        raise ServiceError(SOLD_OUT, code="sold_out")
    enqueue_after_commit(
        "campaigns.expire_flash_order",
        institution.id,
        order.id,
        job_id=f"flash-order-{order.id}",
        at=order.pay_by,
    )
    return order


@payments.on_transition(FLASH_PURPOSE)
def _on_flash_payment(payment: Payment, previous: PaymentStatus, cause: str) -> None:
    """Paid in time: the seat is the family's and the child enrolled. Paid after the order
    expired: the money goes back. Failed or abandoned: the order expires now."""
    order = _locked_order(payment.reference)
    if order is None:
        return
    institution = institution_by_id(order.institution_id)
    if payment.status == PaymentStatus.CAPTURED:
        if order.status == FlashOrderStatus.PENDING:
            _flash_order_paid(institution, order)
        elif order.status == FlashOrderStatus.EXPIRED:
            payments.refund(payment, f"flash order {order.code} expired before it was paid")
    elif payment.status == PaymentStatus.REFUNDED and order.status == FlashOrderStatus.EXPIRED:
        order.status = FlashOrderStatus.REFUNDED
        order.refunded_at = utcnow()
        _notify_flash(institution, order, "flash_refunded")
    elif payment.status == PaymentStatus.FAILED and order.status == FlashOrderStatus.PENDING:
        expire_flash_order(institution, order, force=True)
    db.session.flush()


def _locked_order(order_id: int) -> FlashOrder | None:
    return db.session.scalar(
        select(FlashOrder)
        .where(FlashOrder.id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _flash_order_paid(institution, order: FlashOrder) -> None:
    sale = order.flash_sale
    order.status = FlashOrderStatus.PAID
    order.paid_at = utcnow()
    order.enrolment_id, group = _enrol_buyer(
        institution, sale.course, order, "bought", sale.title, f"flash:{sale.code}"
    )
    _notify_flash(institution, order, "flash_paid", group)
    # The hot row, last.
    db.session.execute(
        update(FlashSale)
        .where(FlashSale.id == sale.id)
        .values(reserved=FlashSale.reserved - 1, sold=FlashSale.sold + 1)
        .execution_options(synchronize_session=False)
    )
    _flash_page_changed(sale)


def expire_flash_order(institution, order: FlashOrder, force: bool = False) -> bool:
    """An order not paid by its deadline expires and its seat returns to the sale (in the
    database now, in Redis once this commits). Once: only a pending order expires."""
    order = _locked_order(order.id)
    if order is None or order.status != FlashOrderStatus.PENDING:
        return False
    if not force and order.pay_by > utcnow():
        return False
    order.status = FlashOrderStatus.EXPIRED
    order.expired_at = utcnow()
    _notify_flash(institution, order, "flash_expired")
    sale_id, phone, attempt = order.flash_sale_id, order.phone, order.attempt_key
    db.session.execute(
        update(FlashSale)
        .where(FlashSale.id == sale_id)
        .values(reserved=FlashSale.reserved - 1)
        .execution_options(synchronize_session=False)
    )
    after_commit(db.session(), lambda: stock.give_back(sale_id, phone, attempt))
    _flash_page_changed(order.flash_sale)
    return True


def ask_flash_reminder(institution, sale: FlashSale, contact: Contact) -> bool:
    """Tell the family when the sale starts (once, 5 minutes before: the outbox keeps it
    once per sale and family). Returns whether this asked anew."""
    if utcnow() >= sale.starts_at:
        return False
    row = db.insert_unless_exists(
        FlashReminder,
        {
            "institution_id": institution.id,
            "flash_sale_id": sale.id,
            "contact_id": contact.id,
            "created_at": utcnow(),
        },
        conflict=["flash_sale_id", "contact_id"],
    )
    if row is None:
        return False
    notifications.notify_contact(
        institution,
        contact,
        "flash_starting",
        _flash_context(sale),
        dedupe_key=f"flash-remind:{sale.id}:{contact.id}",
        send_at=max(sale.starts_at - FLASH_REMIND_BEFORE, utcnow()),
    )
    return True


def flash_url(sale: FlashSale) -> str:
    institution = institution_by_id(sale.institution_id)
    return external_url(
        "campaigns_public.flash_page", institution_slug=institution.slug, code=sale.code
    )


def _flash_context(sale: FlashSale, order: FlashOrder | None = None) -> dict:
    context = {
        "campaign_title": sale.title,
        "course_title": sale.course.title,
        "sale_starts_at": sale.starts_at.isoformat(),
        "sale_link": flash_url(sale),
        "currency": sale.currency,
        "amount_minor": sale.sale_price_amount,
    }
    if order is not None:
        context["child_name"] = order.student.name
        context["amount_minor"] = order.price_amount
        context["pay_by"] = order.pay_by.isoformat()
    return context


def _notify_flash(institution, order: FlashOrder, kind: str, extra: dict | None = None) -> None:
    notifications.notify_contact(
        institution,
        order.contact,
        kind,
        {**_flash_context(order.flash_sale, order), **(extra or {})},
        dedupe_key=f"{kind}:flash-order:{order.id}",
    )
