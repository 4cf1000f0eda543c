"""Every page as people see it: each parent page on a 390×844 phone and each staff page on
a 1366×850 screen, in Chinese and in English, from the demo's data. No page may be wider
than its screen, and none may answer with an error.

The screenshots are for the next person to look at: they go to $COHORT_SCREENSHOTS when
it is set (else the test's temporary folder), named <language>/<who>-<page>.png:

    COHORT_SCREENSHOTS=screenshots ./run test tests/e2e/test_screenshots.py
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from app import demo
from app.campaigns import queries as campaign_queries
from app.campaigns.models import FlashSale, GroupBuy
from app.contacts import services as contacts
from app.contacts.models import Contact
from app.courses.models import Course, Lesson
from app.extensions import db
from app.institutions.models import Institution
from app.tenancy import bound
from tests.helpers import PHONE, join_team, open_team, register

DESKTOP = {"viewport": {"width": 1366, "height": 850}}
LANGUAGES = ["zh_CN", "en"]
# Staff pages that are files, not pages, or that act when opened.
NOT_PAGES = re.compile(r"\.(csv|png|svg|ics|json)$|/qr|/export|/logout|/cover|/poster|/photo")


def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("COHORT_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def look(page, url: str, path: Path) -> tuple[int, int]:
    """Open `url`, save its screenshot; (status, how much wider than the screen it is)."""
    response = page.goto(url)
    page.wait_for_load_state("networkidle")
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    return response.status, overflow


@pytest.fixture
def sunrise(app, client):
    """The demo school, with a team forming, a family registered and signed in."""
    demo.seed()
    institution = db.session.scalar(select(Institution).where(Institution.slug == demo.DEMO_SLUG))
    group_buy = db.session.scalar(select(GroupBuy).where(GroupBuy.institution_id == institution.id))
    trial = db.session.scalar(
        select(Course).where(Course.institution_id == institution.id, Course.price_amount == 0)
    )
    flash_sale = db.session.scalar(
        select(FlashSale).where(FlashSale.institution_id == institution.id)
    )
    open_team(client, institution, group_buy, 1, phone="138 0013 8000", student_name="乐乐")
    team = campaign_queries.teams_of(group_buy)[0]
    join_team(client, institution, group_buy, team, 2)
    registered = register(client, institution, trial, phone="138 0013 8000", student_name="乐乐")
    family = db.session.scalar(select(Contact).where(Contact.phone == "+8613800138000"))
    with bound(institution):
        sign_in = contacts.parent_page_url(institution, family)
    return {
        "institution": institution,
        "group_buy": group_buy,
        "flash_sale": flash_sale,
        "team": team,
        "trial": trial,
        "registered": registered.headers["Location"],
        "sign_in": sign_in.removeprefix("http://localhost"),
    }


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_parent_page_fits_a_phone(live_server, browser, sunrise, tmp_path, language):
    slug = sunrise["institution"].slug
    group_buy, team = sunrise["group_buy"], sunrise["team"]
    pages = {
        "group-buy": f"/{slug}/gb/{group_buy.code}",
        "team": f"/{slug}/gb/{group_buy.code}/t/{team.code}",
        "course": f"/{slug}/c/{sunrise['trial'].code}",
        "flash-sale": f"/{slug}/fs/{sunrise['flash_sale'].code}",
        "registered": sunrise["registered"],
        "form": f"/{slug}/f/{demo_form_code(sunrise['institution'])}",
        "my-page": sunrise["sign_in"],
        "my-invitations": f"/{slug}/me/invite",
    }
    context = browser.new_context(**PHONE, locale=language.replace("_", "-"))
    page = context.new_page()
    page.goto(f"{live_server}/lang/{language}")
    problems = {}
    try:
        for name, path in pages.items():
            status, overflow = look(
                page, live_server + path, shots(tmp_path) / language / f"parent-{name}.png"
            )
            if status >= 400 or overflow > 0:
                problems[name] = (status, overflow)
    finally:
        context.close()
    assert problems == {}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_staff_page_fits_a_desktop(live_server, browser, app, sunrise, tmp_path, language):
    institution = sunrise["institution"]
    ids = staff_ids(institution, sunrise)
    pages = {}
    for rule in app.url_map.iter_rules():
        path = rule.rule
        if not path.startswith("/staff/<institution_slug>") or "GET" not in rule.methods:
            continue
        if NOT_PAGES.search(path) or not set(rule.arguments) - {"institution_slug"} <= set(ids):
            continue
        values = {k: ids[k] for k in rule.arguments if k != "institution_slug"}
        pages[rule.endpoint] = app.url_map.bind("localhost").build(
            rule.endpoint, {"institution_slug": institution.slug, **values}
        )
    context = browser.new_context(**DESKTOP, locale=language.replace("_", "-"))
    page = context.new_page()
    page.goto(f"{live_server}/login")
    page.fill("#email", demo.DEMO_EMAIL)
    page.fill("#password", demo.DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/staff/{institution.slug}/**")
    page.goto(f"{live_server}/lang/{language}")
    problems = {}
    try:
        for endpoint, path in sorted(pages.items()):
            name = endpoint.replace(".", "-")
            status, overflow = look(
                page, live_server + path, shots(tmp_path) / language / f"staff-{name}.png"
            )
            if status >= 400 or overflow > 0:
                problems[endpoint] = (status, overflow)
    finally:
        context.close()
    assert len(pages) > 40  # the sweep found the staff pages
    assert problems == {}


def demo_form_code(institution) -> str:
    from app.leads.models import LeadForm

    return db.session.scalar(select(LeadForm.code).where(LeadForm.institution_id == institution.id))


def staff_ids(institution, sunrise) -> dict[str, int]:
    """One of the demo's rows for each id a staff page can take (the pages of the rest are
    left to the route sweep of tests/test_tenancy.py)."""
    from app.groups.models import Group
    from app.leads.models import Lead, LeadForm

    def first(model):
        return db.session.scalar(
            select(model.id).where(model.institution_id == institution.id).order_by(model.id)
        )

    return {
        key: value
        for key, value in {
            "course_id": sunrise["trial"].id,
            "lesson_id": first(Lesson),
            "group_buy_id": sunrise["group_buy"].id,
            "flash_sale_id": sunrise["flash_sale"].id,
            "form_id": first(LeadForm),
            "lead_id": first(Lead),
            "contact_id": first(Contact),
            "group_id": first(Group),
        }.items()
        if value is not None
    }
