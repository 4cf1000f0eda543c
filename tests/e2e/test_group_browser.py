"""A parent registers for a trial on a phone, joins the trial group from the confirmation
page, accepts its rules, asks the teacher a question, and sees the answer appear on the
open page without reloading it."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.groups import services as groups
from app.groups.models import GroupKind, Post
from app.jobs import run_burst
from app.tenancy import bound
from tests.factories import make_course
from tests.helpers import link_in


def test_a_parent_joins_the_trial_group_asks_and_sees_the_answer_arrive(
    live_server, phone, institution, owner, mail_server, tmp_path
):
    institution.locale = "zh_CN"
    db.session.commit()
    course = make_course(institution, capacity=3)
    with bound(institution):
        group = groups.create_group(
            institution,
            title="奥数试听群",
            kind=GroupKind.TRIAL,
            course_id=course.id,
            rules="1. 不发广告\n2. 友善交流",
        )
        groups.create_invite(institution, group)
        db.session.commit()

    phone.goto(f"{live_server}/{institution.slug}/c/{course.code}")
    phone.fill("#parent_name", "王芳")
    phone.fill("#phone", "138 0013 8000")
    phone.fill("#student_name", "乐乐")
    phone.fill("#email", "wang.fang@example.com")
    phone.check("input[name=consent]")
    phone.click("button[type=submit]")
    phone.wait_for_url("**/r/**")

    phone.click("text=加入试听群")
    phone.wait_for_url("**/j/**")
    assert "请先打开您的家长页面" in phone.inner_text("main")
    # The family is known by the link in the confirmation e-mail (no password), which
    # brings them back to the invitation.
    run_burst()
    (mail,) = mail_server.to("wang.fang@example.com")
    phone.goto(live_server + link_in(mail))
    phone.wait_for_url("**/j/**")
    assert "不发广告" in phone.inner_text(".rules")
    phone.click("button:has-text('同意并加入')")  # the rules not accepted yet
    assert "请先同意群规" in phone.inner_text(".has-error")
    phone.check("input[name=accept_rules]")
    phone.click("button:has-text('同意并加入')")
    phone.wait_for_url(f"**/g/{group.code}")
    assert "奥数试听群" in phone.inner_text("h1")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390

    phone.fill("#body", "老师好，第3题怎么做？")
    phone.check("input[name=is_question]")
    phone.click("button:has-text('发布')")
    phone.wait_for_selector("text=老师好，第3题怎么做？")
    phone.screenshot(path=str(tmp_path / "asked.png"), full_page=True)

    db.session.expire_all()
    question = db.session.scalar(select(Post).where(Post.is_question.is_(True)))
    with bound(institution):
        groups.write_staff_post(institution, group, owner, "先画图，再找规律。", reply_to=question)
        db.session.commit()

    # The open page asks every few seconds; the answer shows without a reload.
    phone.wait_for_selector("text=先画图，再找规律。", timeout=15_000)
    assert "已回答" not in phone.inner_text(f"#post-{question.id} .post-head")  # as it was
    phone.screenshot(path=str(tmp_path / "answered.png"), full_page=True)
    db.session.refresh(question)
    assert question.answered_at is not None
