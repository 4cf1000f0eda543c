"""Three parents on phones: one opens a team, two join from its share link, the team fills
and every hold is captured."""

from __future__ import annotations

from app.campaigns.models import MemberStatus, TeamStatus
from app.extensions import db
from app.groups import services as groups
from app.groups.models import GroupKind
from app.jobs import run_burst
from app.tenancy import bound
from tests.factories import make_group_buy
from tests.helpers import PHONE, members, only_team


def _fill_and_pay(page, name: str, phone_number: str, child: str) -> None:
    """The choice in the bottom bar first (the form shows only after it), then the form."""
    assert page.is_hidden("#parent_name")
    page.click(".buy-bar .button-primary")
    page.fill("#parent_name", name)
    page.fill("#phone", phone_number)
    page.fill("#student_name", child)
    page.check("input[name=consent]")
    page.click("form button[type=submit]")


def test_a_team_opens_fills_from_its_share_link_and_succeeds(
    live_server, browser, phone, institution, tmp_path
):
    institution.locale = "zh_CN"
    db.session.commit()
    group_buy = make_group_buy(institution, team_size=3)
    with bound(institution):  # the course's class group, offered once the team is paid
        group = groups.create_group(
            institution, title="寒假班家长群", kind=GroupKind.CLASS, course_id=group_buy.course_id
        )
        groups.create_invite(institution, group)
        db.session.commit()

    phone.goto(f"{live_server}/{institution.slug}/gb/{group_buy.code}?utm_source=wechat")
    assert "¥199.00" in phone.inner_text(".gb-prices")
    assert phone.get_attribute("meta[property='og:title']", "content") == group_buy.title
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert "单独购买" in phone.inner_text(".buy-bar") and "发起拼团" in phone.inner_text(".buy-bar")
    assert "已拼" not in phone.inner_text(".gb-status")  # nothing sold yet: not "0"
    _fill_and_pay(phone, "王芳", "138 0013 8000", "乐乐")
    phone.wait_for_url("**/t/**")
    assert "开团成功" in phone.inner_text(".flashes")
    assert "还差2人成团" in phone.inner_text(".team-headline")
    assert phone.get_attribute("progress.team-progress", "value") == "1"
    countdown = phone.inner_text(".countdown")
    assert countdown.count(":") == 2 and countdown.startswith("23:")  # server time, 24 h team
    share_url = phone.inner_text(".share-url code")
    phone.screenshot(path=str(tmp_path / "leader.png"), full_page=True)

    friends = [("李娜", "138 0013 8001", "小明"), ("张伟", "138 0013 8002", "多多")]
    contexts = []
    for name, number, child in friends:
        context = browser.new_context(**PHONE, locale="zh-CN")
        friend = context.new_page()
        friend.goto(share_url.replace("http://localhost", live_server))
        assert "王**" in friend.inner_text(".members")
        assert "参与拼团" in friend.inner_text(".buy-bar")
        _fill_and_pay(friend, name, number, child)
        friend.wait_for_url("**/t/**")
        assert "参团成功" in friend.inner_text(".flashes")
        last = friend
        contexts.append(context)
    assert "拼团成功" in last.inner_text(".team-headline")
    last.screenshot(path=str(tmp_path / "full.png"), full_page=True)

    run_burst()  # settlement captures every hold
    db.session.expire_all()
    team = only_team(group_buy)
    assert team.status == TeamStatus.SUCCEEDED and team.settled_at is not None
    assert [m.status for m in members(team)] == [MemberStatus.CAPTURED] * 3
    phone.reload()
    assert "已支付" in phone.inner_text(".my-place")
    assert "乐乐已报名" in phone.inner_text(".my-place")
    # The success page leads on: the lessons with their time and place, a calendar file,
    # the class group (the purchase put the family in it), the family's page.
    next_step = phone.inner_text(".next-step")
    assert next_step.count("Room 3") == 2 and "添加到日历" in next_step
    assert "进入班级群" in next_step and "我的课程和订单" in next_step  # already in it
    phone.screenshot(path=str(tmp_path / "success.png"), full_page=True)
    for context in contexts:
        context.close()
