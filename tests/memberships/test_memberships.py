"""VIP memberships: bought on the family's page (localstripe over HTTP) or granted by staff,
they open the VIP clubs; renewing extends them; when one ends the family is reminded 3
days before and leaves the VIP clubs on the day, each exactly once."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from flask_babel import force_locale
from sqlalchemy import func, select

from app.accounts.models import Role
from app.contacts.models import SourceKind
from app.contacts.services import ContactDetails, StudentDetails, Touch, find_or_create_contact
from app.db import utcnow
from app.devtools.mailsink import body_text
from app.errors import ServiceError
from app.extensions import db, redis_connection
from app.groups import services as groups
from app.groups.models import GroupKind, GroupMember, MemberStatus, ModerationAction
from app.jobs import run_burst
from app.memberships import queries, services
from app.memberships.models import MembershipSource, VipMembership, VipTier, membership_end
from app.memberships.tasks import sweep_memberships
from app.notifications.models import Channel, OutboxMessage
from app.payments import services as payments
from app.payments.models import Payment, PaymentStatus
from app.portal.services import SESSION_KEY
from app.tenancy import bound
from tests.factories import make_institution, make_member
from tests.helpers import (
    DECLINED,
    VISA,
    captures_of,
    count,
    intent,
    login,
    pay_like_stripe_js,
)

PRICE = 99900  # ¥999.00 a year
CARD = {"card_number": VISA, "card_expiry": "12/30", "card_cvc": "123"}
SHANGHAI = ZoneInfo("Asia/Shanghai")


def make_family(institution, n: int = 1):
    contact, _ = find_or_create_contact(
        institution,
        phone=f"1370013{n:04d}",
        details=ContactDetails(
            parent_name=f"Parent {n}",
            email=f"vip{n}@example.com",
            students=[StudentDetails(f"Child {n}")],
        ),
        touch=Touch(SourceKind.STAFF),
    )
    return contact


def make_tier(institution, price: int = PRICE, days: int = 365, name: str = "Gold") -> VipTier:
    return services.save_tier(
        institution,
        None,
        name=name,
        price_amount=price,
        duration_days=days,
        perks="Priority seats\nA monthly parents' salon",
        is_active=True,
    )


def page_values(html: str) -> dict[str, str]:
    """The hidden fields of a page's form: what it showed (a price, days) and its key."""
    return dict(re.findall(r'<input id="\w+" name="(\w+)" type="hidden" value="([^"]*)"', html))


def buy_data(client, institution, tier, **card) -> dict:
    """What the checkout page of `tier` sends when the family presses Pay (the test card,
    and the price and days the page shows)."""
    page = client.get(f"/{institution.slug}/me/vip/{tier.id}")
    assert page.status_code == 200
    return {**CARD, **card, **page_values(page.get_data(as_text=True))}


def make_vip_club(institution):
    group = groups.create_group(
        institution, title="VIP parents' club", rules="Be kind.", kind=GroupKind.VIP
    )
    return group, groups.create_invite(institution, group)


def sign_in(client, contact) -> None:
    with client.session_transaction() as session:
        session[SESSION_KEY] = {str(contact.institution_id): contact.id}


def local(day: datetime, at: time) -> datetime:
    """`at` on `day`'s date in Shanghai, as UTC."""
    return datetime.combine(day.astimezone(SHANGHAI).date(), at, tzinfo=SHANGHAI).astimezone(UTC)


def memberships_of(contact) -> list[VipMembership]:
    return list(
        db.session.scalars(
            select(VipMembership)
            .where(VipMembership.contact_id == contact.id)
            .order_by(VipMembership.starts_at)
        )
    )


def member_status(group, contact) -> MemberStatus | None:
    return db.session.scalar(
        select(GroupMember.status).where(
            GroupMember.group_id == group.id, GroupMember.contact_id == contact.id
        )
    )


def removals(group) -> list[ModerationAction]:
    return list(
        db.session.scalars(
            select(ModerationAction).where(
                ModerationAction.group_id == group.id, ModerationAction.action == "removed"
            )
        )
    )


def messages(template: str) -> int:
    """The family's e-mails of a kind in the outbox (one row per channel and message)."""
    return count(
        OutboxMessage,
        OutboxMessage.template == template,
        OutboxMessage.channel == Channel.EMAIL,
    )


def sweep() -> None:
    sweep_memberships()
    run_burst()


# --- buying ------------------------------------------------------------------------------------


def test_a_paid_membership_opens_the_vip_club(app, institution, mail_server):
    with bound(institution):
        tier = make_tier(institution)
        group, invite = make_vip_club(institution)
        contact = make_family(institution)
        db.session.commit()
    client = app.test_client()
    sign_in(client, contact)
    join = f"/{institution.slug}/j/{invite.code}"

    before = client.get(join).get_data(as_text=True)
    refused = client.post(join, data={"accept_rules": "y"})

    assert "VIP members only" in before and "Accept and join" not in before
    assert refused.status_code == 422
    assert "for VIP members only" in refused.get_data(as_text=True)
    assert f"/{institution.slug}/me#vip" in refused.get_data(as_text=True)
    assert member_status(group, contact) is None

    page = client.get(f"/{institution.slug}/me").get_data(as_text=True)
    assert "Become VIP" in page and "CN¥999.00" in page
    checkout = client.get(f"/{institution.slug}/me/vip/{tier.id}").get_data(as_text=True)
    assert "Pay CN¥999.00" in checkout and "Card (test mode)" in checkout

    paid = client.post(
        f"/{institution.slug}/me/vip/{tier.id}", data=buy_data(client, institution, tier)
    )

    assert paid.status_code == 302 and paid.headers["Location"].endswith("/me#vip")
    payment = db.session.scalars(select(Payment)).one()
    assert (payment.status, payment.amount, payment.purpose) == (
        PaymentStatus.CAPTURED,
        PRICE,
        "vip",
    )
    assert intent(payment.intent_id).status == "succeeded"
    assert captures_of(payment.intent_id) == 1
    (membership,) = memberships_of(contact)
    assert (membership.source, membership.payment_id, membership.tier_id) == (
        MembershipSource.PAID,
        payment.id,
        tier.id,
    )
    assert membership.is_active(utcnow())
    assert membership.ends_at == membership_end(membership.starts_at, 365, SHANGHAI)
    assert messages("vip_started") == 1
    page = client.get(f"/{institution.slug}/me").get_data(as_text=True)
    assert "Your VIP membership runs until" in page and "Priority seats" in page
    assert "Renew" in page and f"/j/{invite.code}" in page  # the way into the club

    joined = client.post(join, data={"accept_rules": "y"})

    assert joined.status_code == 302 and joined.headers["Location"].endswith(f"/g/{group.code}")
    assert member_status(group, contact) == MemberStatus.ACTIVE
    assert f"/g/{group.code}" in client.get(f"/{institution.slug}/me").get_data(as_text=True)
    run_burst()
    (welcome,) = mail_server.to("vip1@example.com")
    assert welcome["Subject"] == "Welcome to Gold"


def test_the_membership_is_written_once_whatever_reports_the_payment(app, institution):
    with bound(institution):
        tier = make_tier(institution)
        contact = make_family(institution)
        db.session.commit()
    client = app.test_client()
    sign_in(client, contact)
    client.post(f"/{institution.slug}/me/vip/{tier.id}", data=buy_data(client, institution, tier))
    payment = db.session.scalars(select(Payment)).one()

    with bound(institution):
        # Reconciliation and a webhook read the same success back; a handler run again (a
        # replayed transition) finds the membership of its payment already written.
        payments.reconcile(payment, utcnow())
        payments.sync(payment, "webhook payment_intent.succeeded")
        services._on_payment(payment, PaymentStatus.PENDING, "replayed")
        db.session.commit()

    assert len(memberships_of(contact)) == 1
    assert messages("vip_started") == 1


def test_a_declined_card_writes_no_membership_and_the_family_can_try_again(app, institution):
    with bound(institution):
        tier = make_tier(institution)
        contact = make_family(institution)
        db.session.commit()
    client = app.test_client()
    sign_in(client, contact)

    declined = client.post(
        f"/{institution.slug}/me/vip/{tier.id}",
        data=buy_data(client, institution, tier, card_number=DECLINED),
    )

    assert declined.status_code == 422
    assert "The payment did not go through" in declined.get_data(as_text=True)
    assert db.session.scalar(select(Payment.status)) == PaymentStatus.FAILED
    assert memberships_of(contact) == []
    again = client.post(
        f"/{institution.slug}/me/vip/{tier.id}", data=buy_data(client, institution, tier)
    )
    assert again.status_code == 302 and len(memberships_of(contact)) == 1


def test_with_the_payment_element_the_membership_starts_when_stripe_says_paid(
    app, institution, monkeypatch
):
    monkeypatch.setitem(app.config, "STRIPE_CHECKOUT", "payment_element")
    with bound(institution):
        tier = make_tier(institution)
        contact = make_family(institution)
        db.session.commit()
    client = app.test_client()
    sign_in(client, contact)

    shown = buy_data(client, institution, tier)
    response = client.post(f"/{institution.slug}/me/vip/{tier.id}", data=shown)
    checkout_url = response.headers["Location"]
    payment = db.session.scalars(select(Payment)).one()
    again = client.post(f"/{institution.slug}/me/vip/{tier.id}", data=shown)

    assert f"/{institution.slug}/pay/" in checkout_url and memberships_of(contact) == []
    assert again.status_code == 422 and "already in progress" in again.get_data(as_text=True)
    pay_like_stripe_js(payment.intent_id)
    back = client.get(f"{checkout_url}/done?redirect_status=succeeded")

    assert back.headers["Location"].endswith(f"/{institution.slug}/me")
    (membership,) = memberships_of(contact)
    assert membership.payment_id == payment.id and membership.source == MembershipSource.PAID
    assert count(Payment) == 1


def test_the_family_gets_the_days_it_paid_for_though_staff_change_the_tier_before_it_lands(
    app, institution, monkeypatch
):
    """With the Payment Element the money is taken minutes after the family pressed Pay;
    staff shorten the tier and raise its price meanwhile: the family pays, and gets, what
    its page showed."""
    monkeypatch.setitem(app.config, "STRIPE_CHECKOUT", "payment_element")
    with bound(institution):
        tier = make_tier(institution, days=365)
        contact = make_family(institution)
        db.session.commit()
    client = app.test_client()
    sign_in(client, contact)

    response = client.post(
        f"/{institution.slug}/me/vip/{tier.id}", data=buy_data(client, institution, tier)
    )
    payment = db.session.scalars(select(Payment)).one()
    with bound(institution):
        services.save_tier(
            institution,
            tier,
            name="Gold",
            price_amount=PRICE * 2,
            duration_days=30,
            perks=None,
            is_active=True,
        )
        db.session.commit()
    pay_like_stripe_js(payment.intent_id)
    client.get(f"{response.headers['Location']}/done?redirect_status=succeeded")

    (membership,) = memberships_of(contact)
    assert membership.payment_id == payment.id and payment.amount == PRICE
    assert membership.ends_at == membership_end(membership.starts_at, 365, SHANGHAI)


@pytest.mark.parametrize(
    "change", [{"price_amount": PRICE + 30000}, {"duration_days": 30}], ids=["price", "days"]
)
def test_a_tier_changed_since_its_page_was_shown_is_refused_and_shown_again(
    app, institution, change
):
    with bound(institution):
        tier = make_tier(institution, days=365)
        contact = make_family(institution)
        db.session.commit()
    client = app.test_client()
    sign_in(client, contact)
    shown = buy_data(client, institution, tier)  # the page, with the price and days it shows
    with bound(institution):
        values = {"price_amount": PRICE, "duration_days": 365, **change}
        services.save_tier(institution, tier, name="Gold", perks=None, is_active=True, **values)
        db.session.commit()

    refused = client.post(f"/{institution.slug}/me/vip/{tier.id}", data=shown)

    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "This membership changed: please look at it again." in page
    assert count(Payment) == 0 and memberships_of(contact) == []
    assert (shown["price_seen"], shown["days_seen"]) == (str(PRICE), "365")
    again = page_values(page)  # the page as it is now
    assert (again["price_seen"], again["days_seen"]) == (
        str(values["price_amount"]),
        str(values["duration_days"]),
    )
    paid = client.post(f"/{institution.slug}/me/vip/{tier.id}", data={**CARD, **again})
    assert paid.status_code == 302
    (membership,) = memberships_of(contact)
    assert db.session.scalar(select(Payment.amount)) == values["price_amount"]
    assert membership.ends_at == membership_end(
        membership.starts_at, values["duration_days"], SHANGHAI
    )


def test_a_family_not_signed_in_is_sent_to_its_page_and_free_tiers_are_not_for_sale(
    app, institution
):
    with bound(institution):
        paid = make_tier(institution)
        free = make_tier(institution, price=0, name="Friends")
        hidden = make_tier(institution, name="Old gold")
        hidden.is_active = False
        contact = make_family(institution)
        db.session.commit()
    client = app.test_client()

    anonymous = client.get(f"/{institution.slug}/me/vip/{paid.id}")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].endswith("/me")

    sign_in(client, contact)
    page = client.get(f"/{institution.slug}/me").get_data(as_text=True)
    assert f"/me/vip/{paid.id}" in page
    assert f"/me/vip/{free.id}" not in page and f"/me/vip/{hidden.id}" not in page
    assert client.get(f"/{institution.slug}/me/vip/{free.id}").status_code == 404
    assert client.post(f"/{institution.slug}/me/vip/{hidden.id}", data=CARD).status_code == 404
    with bound(institution), pytest.raises(ServiceError):
        services.start_purchase(institution, contact, free, price_seen=0, days_seen=365)
    assert count(Payment) == 0


def test_another_institutions_tier_cannot_be_bought_here(app, institution):
    other = make_institution()
    with bound(other):
        theirs = make_tier(other)
        db.session.commit()
    with bound(institution):
        contact = make_family(institution)
        db.session.commit()
    client = app.test_client()
    sign_in(client, contact)

    assert client.get(f"/{institution.slug}/me/vip/{theirs.id}").status_code == 404
    assert client.post(f"/{institution.slug}/me/vip/{theirs.id}", data=CARD).status_code == 404
    assert count(Payment) == 0


# --- granting and renewing ---------------------------------------------------------------------


def test_staff_grant_a_free_tier_from_the_contacts_record(owner_client, institution):
    with bound(institution):
        tier = make_tier(institution, price=0, days=30, name="Friends")
        group, _invite = make_vip_club(institution)
        contact = make_family(institution)
        db.session.commit()
    record = owner_client.get(f"/staff/{institution.slug}/contacts/{contact.id}")
    assert "Not a VIP member." in record.get_data(as_text=True)
    assert f"/vip/grant/{contact.id}" in record.get_data(as_text=True)

    granted = owner_client.post(
        f"/staff/{institution.slug}/vip/grant/{contact.id}",
        data={"tier_id": tier.id, "key": "k" * 22},
    )

    assert granted.status_code == 302
    (membership,) = memberships_of(contact)
    assert membership.source == MembershipSource.GRANTED and membership.granted_by_id
    assert membership.ends_at == membership_end(membership.starts_at, 30, SHANGHAI)
    assert messages("vip_started") == 1
    record = owner_client.get(f"/staff/{institution.slug}/contacts/{contact.id}")
    assert "VIP</span> Friends, until" in record.get_data(as_text=True)
    members = owner_client.get(f"/staff/{institution.slug}/vip/members").get_data(as_text=True)
    assert "Parent 1" in members and "Granted by staff" in members
    with bound(institution):
        assert groups.add_member(institution, group, contact).status == MemberStatus.ACTIVE


def test_a_grant_form_sent_twice_grants_one_membership(owner_client, institution):
    with bound(institution):
        tier = make_tier(institution, price=0, days=30, name="Friends")
        contact = make_family(institution)
        db.session.commit()
    url = f"/staff/{institution.slug}/vip/grant/{contact.id}"
    form = page_values(owner_client.get(url).get_data(as_text=True))

    first = owner_client.post(url, data={**form, "tier_id": tier.id})
    second = owner_client.post(url, data={**form, "tier_id": tier.id})  # a double click

    assert first.status_code == second.status_code == 302
    (membership,) = memberships_of(contact)
    assert membership.grant_key == form["key"]
    assert messages("vip_started") == 1
    # The same page opened again is a new form: a second term, on purpose.
    form = page_values(owner_client.get(url).get_data(as_text=True))
    assert owner_client.post(url, data={**form, "tier_id": tier.id}).status_code == 302
    first, second = memberships_of(contact)
    assert second.starts_at == first.ends_at


def test_a_new_tier_form_sent_twice_makes_one_tier(owner_client, institution):
    url = f"/staff/{institution.slug}/vip/tiers/new"
    form = page_values(owner_client.get(url).get_data(as_text=True))
    data = {**form, "name": "Gold", "price": "999", "duration_days": "365", "is_active": "y"}

    assert owner_client.post(url, data=data).status_code == 302
    assert owner_client.post(url, data=data).status_code == 302

    (tier,) = db.session.scalars(select(VipTier)).all()
    assert (tier.name, tier.price_amount) == ("Gold", PRICE)


def test_renewing_extends_from_the_end_of_the_current_membership(app, institution):
    start = local(utcnow(), time(15, 0))
    with time_machine.travel(start, tick=False):
        with bound(institution):
            tier = make_tier(institution, days=30)
            contact = make_family(institution)
            first = services.grant_membership(institution, contact, tier, None)
            db.session.commit()
        client = app.test_client()
        sign_in(client, contact)
        offer = client.get(f"/{institution.slug}/me/vip/{tier.id}").get_data(as_text=True)
        renewed = client.post(
            f"/{institution.slug}/me/vip/{tier.id}", data={**CARD, **page_values(offer)}
        )

    assert "This renewal starts when your current VIP membership ends" in offer
    assert renewed.status_code == 302
    first, second = memberships_of(contact)
    # 15:00 plus 30 days runs to the end of that day: the 31st day at midnight, Shanghai.
    assert first.ends_at == local(start + timedelta(days=31), time(0, 0))
    assert second.starts_at == first.ends_at  # no day lost, none twice
    assert second.ends_at == local(start + timedelta(days=61), time(0, 0))
    assert second.source == MembershipSource.PAID
    with bound(institution):
        assert queries.vip_until(contact, start) == second.ends_at
    with time_machine.travel(start, tick=False):
        page = client.get(f"/{institution.slug}/me").get_data(as_text=True)
    last_day = (start + timedelta(days=60)).astimezone(SHANGHAI)
    assert f"runs until {last_day.strftime('%b')} {last_day.day}, {last_day.year}" in page


# --- the end: reminded once, removed on the day, once ------------------------------------------


@pytest.fixture
def vip_family(institution):
    """A family granted 10 days of VIP at 15:00 today (Shanghai), in the VIP club."""
    start = local(utcnow(), time(15, 0))
    with time_machine.travel(start, tick=False), bound(institution):
        tier = make_tier(institution, days=10)
        group, _ = make_vip_club(institution)
        contact = make_family(institution)
        membership = services.grant_membership(institution, contact, tier, None)
        groups.add_member(institution, group, contact)
        db.session.commit()
    return start, tier, group, contact, membership


def test_the_family_is_reminded_once_three_days_before_and_removed_on_the_day_once(
    institution, vip_family, mail_server
):
    start, _tier, group, contact, membership = vip_family
    # 10 days from 15:00 run to the end of day 10; the family leaves at day 11's midnight.
    ends = local(start + timedelta(days=11), time(0, 0))
    assert membership.ends_at == ends
    reminder = local(start + timedelta(days=8), time(10, 0))

    with time_machine.travel(reminder - timedelta(minutes=1), tick=False):
        sweep()
    assert messages("vip_expiring") == 0

    with time_machine.travel(reminder + timedelta(seconds=30), tick=False):
        sweep()
        sweep()  # a second sweep finds it done
    assert messages("vip_expiring") == 1
    db.session.refresh(membership)
    assert membership.warned_at is not None
    (email,) = [m for m in mail_server.to("vip1@example.com") if "ends in 3" in m["Subject"]]
    assert "runs until" in body_text(email) and "/me/t/" in body_text(email)
    assert "#vip" in body_text(email)

    with time_machine.travel(ends - timedelta(minutes=1), tick=False):  # the last day, 23:59
        sweep()
    assert member_status(group, contact) == MemberStatus.ACTIVE and removals(group) == []

    with time_machine.travel(ends + timedelta(seconds=30), tick=False):
        sweep()
        sweep()
        redis_connection.client.flushall()  # every job and its record are gone
        sweep()
    with time_machine.travel(ends + timedelta(days=1), tick=False):
        sweep()

    assert member_status(group, contact) == MemberStatus.REMOVED
    (removal,) = removals(group)
    assert removal.reason == groups.VIP_LAPSED and removal.user_id is None
    with force_locale("en"):  # outside a request: the default language is Chinese
        assert groups.log_reason(removal.reason) == "Their VIP membership ended"
    db.session.refresh(membership)
    assert membership.lapsed_at is not None
    assert messages("vip_expiring") == 1
    later = time_machine.travel(ends + timedelta(days=1), tick=False)
    english = force_locale("en")
    with later, bound(institution), english, pytest.raises(ServiceError, match="VIP members only"):
        groups.add_member(institution, group, contact)


def test_a_renewal_before_the_end_prevents_the_reminder_and_the_removal(
    institution, vip_family, owner
):
    start, tier, group, contact, first = vip_family
    ends = first.ends_at
    with time_machine.travel(start + timedelta(days=2), tick=False), bound(institution):
        services.grant_membership(institution, contact, tier, owner)
        db.session.commit()

    for moment in (local(start + timedelta(days=8), time(10, 1)), ends + timedelta(seconds=30)):
        with time_machine.travel(moment, tick=False):
            sweep()

    assert messages("vip_expiring") == 0
    assert member_status(group, contact) == MemberStatus.ACTIVE and removals(group) == []
    db.session.refresh(first)
    assert first.warned_at is None and first.lapsed_at is not None  # its end is dealt with
    with time_machine.travel(ends + timedelta(seconds=30), tick=False), bound(institution):
        assert queries.is_vip(contact, utcnow())
        assert queries.due_lapses(utcnow()) == []


def test_a_membership_ends_on_the_institutions_day():
    new_york = ZoneInfo("America/New_York")
    # 20:00 in New York on 1 March is already 2 March in UTC: the day is New York's.
    start = datetime(2027, 3, 2, 1, 0, tzinfo=UTC)
    end = membership_end(start, 30, new_york)
    assert end.astimezone(new_york) == datetime(2027, 4, 1, 0, 0, tzinfo=new_york)
    # A renewal from that midnight keeps to midnights across the change of clocks.
    assert membership_end(end, 30, new_york).astimezone(new_york).hour == 0


# --- the VIP badge -----------------------------------------------------------------------------


def test_vip_families_carry_a_badge_in_the_feed_and_the_member_list(app, owner_client, institution):
    with bound(institution):
        tier = make_tier(institution, price=0)
        group = groups.create_group(institution, title="Class 3", rules="Be kind.")
        vip, other = make_family(institution, 1), make_family(institution, 2)
        services.grant_membership(institution, vip, tier, None)
        for contact in (vip, other):
            member = groups.add_member(institution, group, contact)
            groups.write_post(institution, group, member, f"Hello from {contact.parent_name}")
        db.session.commit()
    client = app.test_client()
    sign_in(client, other)

    feed = client.get(f"/{institution.slug}/g/{group.code}").get_data(as_text=True)
    staff = owner_client.get(f"/staff/{institution.slug}/groups/{group.id}").get_data(as_text=True)

    assert feed.count('class="badge badge-vip"') == 1
    assert feed.index("badge-vip") < feed.index("Hello from Parent 1")
    assert staff.count('class="badge badge-vip"') == 2  # its post, and the member list
    row = staff[staff.index('id="members"') :]
    assert row.index("Parent 1") < row.index("badge-vip") < row.index("Parent 2")


# --- staff pages, tenancy and bad input --------------------------------------------------------


def test_staff_create_and_edit_tiers_in_the_institutions_currency(owner_client, institution):
    created = owner_client.post(
        f"/staff/{institution.slug}/vip/tiers/new",
        data={
            "name": "Gold",
            "price": "999.00",
            "duration_days": "365",
            "perks": "Salons",
            "is_active": "y",
            "key": "k" * 22,
        },
    )
    tier = db.session.scalars(select(VipTier)).one()
    edited = owner_client.post(
        f"/staff/{institution.slug}/vip/tiers/{tier.id}/edit",
        data={"name": "Gold+", "price": "0", "duration_days": "30"},
    )
    listing = owner_client.get(f"/staff/{institution.slug}/vip").get_data(as_text=True)

    assert created.status_code == edited.status_code == 302
    db.session.refresh(tier)
    assert (tier.name, tier.price_amount, tier.duration_days, tier.is_active) == (
        "Gold+",
        0,
        30,
        False,
    )
    assert "Gold+" in listing and "Not offered" in listing


@pytest.mark.parametrize(
    "data",
    [
        {"name": "", "price": "10", "duration_days": "30"},
        {"name": "Gold", "price": "abc", "duration_days": "30"},
        {"name": "Gold", "price": "-1", "duration_days": "30"},
        {"name": "Gold", "price": "10", "duration_days": "0"},
        {"name": "Gold", "price": "10", "duration_days": "99999999999"},
        {"name": "G" * 200, "price": "10", "duration_days": "30"},
    ],
)
def test_a_bad_tier_gets_field_errors_and_changes_nothing(owner_client, institution, data):
    response = owner_client.post(
        f"/staff/{institution.slug}/vip/tiers/new", data={**data, "key": "k" * 22}
    )
    assert response.status_code == 422
    assert 'class="field-error"' in response.get_data(as_text=True)
    assert count(VipTier) == 0


@pytest.mark.parametrize(
    "data", [{}, {"tier_id": "abc"}, {"tier_id": "999999"}, {"tier_id": "T", "days": "0"}]
)
def test_a_bad_grant_gets_field_errors_and_changes_nothing(owner_client, institution, data):
    with bound(institution):
        tier = make_tier(institution)
        contact = make_family(institution)
        db.session.commit()
    data = {key: str(tier.id) if value == "T" else value for key, value in data.items()}
    data["key"] = "k" * 22
    response = owner_client.post(f"/staff/{institution.slug}/vip/grant/{contact.id}", data=data)
    assert response.status_code == 422
    assert 'class="field-error"' in response.get_data(as_text=True)
    assert count(VipMembership) == 0


def test_a_bad_card_gets_field_errors_and_takes_nothing(app, institution):
    with bound(institution):
        tier = make_tier(institution)
        contact = make_family(institution)
        db.session.commit()
    client = app.test_client()
    sign_in(client, contact)
    response = client.post(
        f"/{institution.slug}/me/vip/{tier.id}",
        data=buy_data(client, institution, tier, card_number="12"),
    )
    assert response.status_code == 422 and "Enter the 16 digits" in response.get_data(True)
    assert count(Payment) == 0 and count(VipMembership) == 0


def test_staff_of_another_institution_get_404_for_tiers_and_grants(client, institution):
    with bound(institution):
        tier = make_tier(institution)
        contact = make_family(institution)
        db.session.commit()
    other = make_institution()
    db.session.commit()
    login(client, make_member(other, Role.OWNER))
    theirs = f"/staff/{other.slug}"

    assert client.get(f"{theirs}/vip/tiers/{tier.id}/edit").status_code == 404
    assert client.post(f"{theirs}/vip/tiers/{tier.id}/edit", data={"name": "x"}).status_code == 404
    assert client.get(f"{theirs}/vip/grant/{contact.id}").status_code == 404
    grant = {"tier_id": tier.id, "key": "k" * 22}
    assert client.post(f"{theirs}/vip/grant/{contact.id}", data=grant).status_code == 404
    assert client.get(f"/staff/{institution.slug}/vip").status_code == 404
    assert count(VipMembership) == 0
    assert db.session.scalar(select(func.count()).select_from(VipTier)) == 1
