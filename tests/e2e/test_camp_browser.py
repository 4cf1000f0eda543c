"""A parent opens the check-in camp from the group on a phone, checks in with a photo,
and sees the streak and the leaderboard."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from urllib.parse import urlsplit

from PIL import Image
from sqlalchemy import select

from app.camps import services as camps
from app.camps.models import CheckIn
from app.contacts.services import parent_page_url
from app.extensions import db
from app.groups import services as groups
from app.tenancy import bound
from tests.groups.test_groups import make_family


def test_a_parent_checks_in_with_a_photo_and_sees_the_streak(
    live_server, phone, institution, tmp_path
):
    institution.locale = "zh_CN"
    db.session.commit()
    today = datetime.now(institution.zone).date()
    with bound(institution):
        group = groups.create_group(institution, title="三年级阅读群", rules="1. 不发广告")
        camp = camps.create_camp(
            institution,
            group,
            title="21天阅读打卡",
            starts_on=today - timedelta(days=1),
            ends_on=today + timedelta(days=19),
            window_start=time(0, 0),
            window_end=time(23, 59),
        )
        family = make_family(institution, 1)
        groups.add_member(institution, group, family)
        db.session.commit()
        child = family.students[0]
        link = urlsplit(parent_page_url(institution, family))
    picture = tmp_path / "reading.jpg"
    Image.new("RGB", (800, 600), (90, 140, 200)).save(picture, "JPEG")

    phone.goto(f"{live_server}{link.path}?{link.query}")  # the link in any message
    phone.goto(f"{live_server}/{institution.slug}/g/{group.code}")
    phone.click(f"a[href$='/camp/{camp.code}']")
    phone.wait_for_url(f"**/camp/{camp.code}")
    assert "21天阅读打卡" in phone.inner_text("h1")

    phone.fill("#body", "今天读了《小王子》第一章")
    phone.set_input_files("#pictures", str(picture))
    phone.click("#check-in button[type=submit]")
    # The pictures are shrunk on the phone first, then the form goes: wait for the answer.
    phone.wait_for_selector(".flash-success")

    assert phone.inner_text(f"[data-child='{child.id}'] .streak-current") == "1"
    assert child.name in phone.inner_text("#leaderboard")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(tmp_path / "checked-in.png"), full_page=True)
    db.session.expire_all()
    checkin = db.session.scalar(select(CheckIn).where(CheckIn.student_id == child.id))
    assert checkin is not None and checkin.day == today and not checkin.is_makeup

    # Yesterday was missed: a make-up card fills it, and the streak runs through it.
    phone.select_option("#day", (today - timedelta(days=1)).isoformat())
    phone.fill("#body", "补卡：昨天读了第二章")
    phone.click("#check-in button[type=submit]")
    phone.wait_for_selector(f"[data-child='{child.id}'] .streak-current:text-is('2')")
    phone.screenshot(path=str(tmp_path / "made-up.png"), full_page=True)
