"""The owner opens the dashboard on a phone and on a desktop: the charts are drawn (inline
SVG, styled by the dashboard's stylesheet, nothing refused by the Content-Security-Policy)
and the page reads without sideways scrolling."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine

from app.contacts import services as contacts
from app.contacts.models import SourceKind
from app.extensions import db
from app.leads import services as leads
from app.leads.models import Stage
from app.tenancy import bound
from tests.factories import PASSWORD
from tests.helpers import PHONE

DESKTOP = {"viewport": {"width": 1366, "height": 850}}


def seed(institution, owner) -> None:
    """A few families over the last days, some of them further down the funnel."""
    today = datetime.now(institution.zone).date()
    with bound(institution):
        for n in range(12):
            local = datetime.combine(today - timedelta(days=n % 6), time(10, 0), institution.zone)
            with time_machine.travel(local.astimezone(UTC), tick=False):
                contact, _ = contacts.find_or_create_contact(
                    institution,
                    phone=f"1370000{n:04d}",
                    details=contacts.ContactDetails(parent_name=f"家长 {n}"),
                    touch=contacts.Touch(SourceKind.FORM, "open-day", utm_source="wechat"),
                )
                lead = leads.create_lead(institution, contact)
                if n % 2:
                    leads.move_lead(lead, Stage.CONTACTED, owner)
                db.session.commit()


@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_the_owner_sees_the_dashboard_charts(live_server, browser, institution, owner, device):
    seed(institution, owner)
    context = browser.new_context(**(PHONE if device == "phone" else DESKTOP), locale="zh-CN")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        page.goto(f"{live_server}/login")
        page.fill("#email", owner.email)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"**/staff/{institution.slug}/")

        assert page.locator("svg.pygal-chart").count() >= 2
        assert page.locator("[data-figure='contacts'] .kpi-value").inner_text() == "12"
        box = page.locator("svg.pygal-chart").first.bounding_box()
        assert box["width"] > 300 and box["height"] > 150  # drawn, at the column's width
        # The stylesheet reached the chart: the plot's background is white, not black.
        fill = page.evaluate(
            "getComputedStyle(document.querySelector('svg.pygal-chart .plot .background')).fill"
        )
        assert fill == "rgb(255, 255, 255)"
        assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]

        page.click("nav.tabs a[href*='/dashboard/funnel']")
        page.wait_for_url("**/dashboard/funnel**")
        assert page.locator("svg.pygal-chart").count() >= 2
        assert page.locator("[data-stage='lead'] .kpi-value").inner_text() == "12"
        assert page.locator("[data-stage='contacted'] .kpi-value").inner_text() == "6"
        assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
        page.click("[data-stage='contacted']")
        page.wait_for_url("**/funnel/families**")
        assert page.locator("#table-families tbody tr").count() == 6

        page.goto(f"{live_server}/staff/{institution.slug}/dashboard/community")
        assert page.locator("#table-cohorts").count() == 1
        assert problems == []
    finally:
        context.close()
