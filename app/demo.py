"""Demo data for `cohort dev`: an institution and its owner, created through the same
services a real signup uses. Safe to run again: what exists is left alone."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from PIL import Image, ImageDraw
from sqlalchemy import select

from app.accounts.models import User
from app.campaigns import services as campaigns
from app.campaigns.models import FlashSale, GroupBuy
from app.camps import services as camps
from app.camps.models import Camp
from app.courses import services as courses
from app.courses.models import Course, CourseKind
from app.errors import ServiceError
from app.extensions import db
from app.groups import services as groups
from app.groups.models import Group, GroupInvite, GroupKind
from app.institutions import services as institutions
from app.institutions.models import Institution
from app.leads import services as leads
from app.leads.models import LeadForm
from app.loyalty import services as loyalty
from app.loyalty.models import Reward, RewardKind
from app.memberships import services as memberships
from app.payments import services as payments
from app.tenancy import bound

DEMO_SLUG = "sunrise"
DEMO_EMAIL = "owner@sunrise.example"
DEMO_PASSWORD = "cohort-demo-2026"  # noqa: S105 - printed to the developer on purpose
DEMO_WEBHOOK_SECRET = "whsec_cohort_demo"  # noqa: S105 - localstripe signs with it


@dataclass(frozen=True)
class Demo:
    slug: str
    email: str
    password: str
    created: bool
    form_code: str
    course_code: str | None
    paid_course_code: str | None
    group_buy_code: str | None
    group_invite_code: str | None
    flash_sale_code: str | None


def seed() -> Demo:
    institution = db.session.scalar(select(Institution).where(Institution.slug == DEMO_SLUG))
    created = institution is None
    if created:
        institution, _owner = institutions.sign_up(
            name="晨光教育 Sunrise Learning",
            slug=DEMO_SLUG,
            timezone="Asia/Shanghai",
            currency="CNY",
            locale="zh_CN",
            owner_name="王老师",
            email=DEMO_EMAIL,
            password=DEMO_PASSWORD,
        )
        institution.contact_phone = "+8613800138000"
        institution.address = "上海市徐汇区漕溪北路 88 号"
        db.session.commit()
    with bound(institution):  # as the institution's own staff would, in its own rows
        _seed(institution, created)
        codes = _codes(institution)
    # Plain values only: touching the ORM object after this would open a new transaction,
    # and on SQLite an idle open transaction blocks the web server and the worker.
    db.session.remove()
    return Demo(DEMO_SLUG, DEMO_EMAIL, DEMO_PASSWORD, created, *codes)


def _seed(institution: Institution, created: bool) -> None:
    if created:
        _seed_form(institution)
        db.session.commit()
    if db.session.scalar(select(Course.id).where(Course.institution_id == institution.id)) is None:
        _seed_course(institution)
        db.session.commit()
    if (
        db.session.scalar(select(GroupBuy.id).where(GroupBuy.institution_id == institution.id))
        is None
    ):
        _seed_group_buy(institution)
        db.session.commit()
    if db.session.scalar(select(Group.id).where(Group.institution_id == institution.id)) is None:
        _seed_group(institution)
        db.session.commit()
    if db.session.scalar(select(Camp.id).where(Camp.institution_id == institution.id)) is None:
        _seed_camp(institution)
        db.session.commit()
    if db.session.scalar(select(Reward.id).where(Reward.institution_id == institution.id)) is None:
        _seed_rewards(institution)
        db.session.commit()
    sale = select(FlashSale.id).where(FlashSale.institution_id == institution.id)
    if db.session.scalar(sale) is None:
        _seed_flash_sale(institution)
        db.session.commit()


def _codes(institution: Institution) -> tuple:
    course_code = db.session.scalar(
        select(Course.code)
        .where(Course.institution_id == institution.id, Course.kind == CourseKind.TRIAL)
        .limit(1)
    )
    paid_course_code = db.session.scalar(
        select(Course.code)
        .where(Course.institution_id == institution.id, Course.price_amount > 0)
        .limit(1)
    )
    group_buy_code = db.session.scalar(
        select(GroupBuy.code).where(GroupBuy.institution_id == institution.id).limit(1)
    )
    form_code = db.session.scalar(
        select(LeadForm.code).where(LeadForm.institution_id == institution.id).limit(1)
    )
    invite_code = db.session.scalar(
        select(GroupInvite.code)
        .where(GroupInvite.institution_id == institution.id, GroupInvite.revoked_at.is_(None))
        .limit(1)
    )
    flash_sale_code = db.session.scalar(
        select(FlashSale.code).where(FlashSale.institution_id == institution.id).limit(1)
    )
    return form_code, course_code, paid_course_code, group_buy_code, invite_code, flash_sale_code


def _seed_form(institution: Institution) -> None:
    leads.save_form(
        institution,
        None,
        title="春季试听课报名 · Spring trial class",
        intro="免费试听一节数学或英语课，老师会在 24 小时内联系您确认时间。",
        fields=[
            *leads.default_fields(),
            {"key": "subject", "required": True, "label": ""},
            {
                "key": "custom_1",
                "kind": "single_choice",
                "label": "方便的时段",
                "choices": ["周六上午", "周六下午", "周日上午", "周日下午"],
                "required": False,
            },
        ],
        consent_text="我同意机构就课程事宜与我联系。",
        thank_you_message="报名成功！课程顾问会尽快联系您。",
        redirect_url=None,
        is_open=True,
        closes_at=None,
        submission_cap=None,
    )


def _seed_course(institution: Institution) -> None:
    """A free maths trial with three evening lessons in the coming days (local 19:00)."""
    course = courses.save_course(
        institution,
        None,
        title="小学数学思维体验课 · Maths thinking trial",
        kind=CourseKind.TRIAL,
        subject="数学",
        grade_range="1–3 年级",
        description="三节免费体验课：用游戏和故事认识数与图形。每节 45 分钟，小班 8 人。",
        capacity=8,
        price_amount=0,
    )
    today = datetime.now(institution.zone).date()
    for days, place in [(1, "徐汇校区 301 教室"), (3, "徐汇校区 301 教室"), (6, "线上 · Online")]:
        starts = datetime.combine(
            today + timedelta(days=days), time(19, 0), tzinfo=institution.zone
        )
        courses.add_lesson(
            course,
            starts_at=starts.astimezone(UTC),
            duration_minutes=45,
            place=place,
            online_url="https://meet.example.com/sunrise-maths" if days == 6 else None,
        )


def _seed_group(institution: Institution) -> None:
    """The trial course's group, offered on its confirmation page, with a pinned welcome."""
    course = db.session.scalar(
        select(Course).where(
            Course.institution_id == institution.id, Course.kind == CourseKind.TRIAL
        )
    )
    group = groups.create_group(
        institution,
        title="数学思维体验课 · 家长群",
        kind=GroupKind.TRIAL,
        course_id=course.id if course else None,
        description="体验课期间的通知、作业和答疑都在这里。",
        rules="1. 只聊与课程和孩子学习有关的话题。\n2. 不发广告、二维码、外部链接和联系方式。\n"
        "3. 友善交流，尊重每一位家长和老师。",
        keywords=["代购", "刷单", "兼职"],
        close_days_after_last_lesson=3,
        farewell="体验课结束啦，感谢各位家长和孩子！寒假数学提高班正在拼团，三人成团更优惠，"
        "欢迎在机构主页报名。",
    )
    groups.create_invite(institution, group, label="群链接")
    owner = db.session.scalar(select(User).where(User.email == DEMO_EMAIL))
    groups.write_staff_post(
        institution,
        group,
        owner,
        "欢迎加入！每节课后老师会在这里布置小练习，有问题随时提问（勾选“向老师提问”）。",
        announcement=True,
        pinned=True,
    )


def _seed_camp(institution: Institution) -> None:
    """A 21-day reading camp in the demo group, running from today, with the first task."""
    group = db.session.scalar(select(Group).where(Group.institution_id == institution.id))
    today = datetime.now(institution.zone).date()
    camp = camps.create_camp(
        institution,
        group,
        title="21天亲子阅读打卡",
        description="每天读15分钟，拍一张读书照片打卡。连续7天、21天有积分奖励。",
        starts_on=today,
        ends_on=today + timedelta(days=20),
        window_start=time(6, 0),
        window_end=time(22, 0),
    )
    camps.set_task(institution, camp, today, "读一本绘本，说一说你最喜欢的一页。")


def _seed_rewards(institution: Institution) -> None:
    """Rewards to spend points on, and a paid VIP tier (its club opens to its members)."""
    for title, kind, price, stock in (
        ("免费试听课一节", RewardKind.FREE_LESSON, 300, 10),
        ("数学思维练习册", RewardKind.MATERIALS, 150, 30),
        ("下期课程立减100元", RewardKind.DISCOUNT, 500, 20),
    ):
        loyalty.create_reward(
            institution, title=title, kind=kind, points_price=price, stock=stock, is_active=True
        )
    memberships.save_tier(
        institution,
        None,
        name="年度VIP",
        price_amount=19900,
        duration_days=365,
        perks="VIP家长群、每月一次一对一学习规划、新课优先报名。",
        is_active=True,
    )


def _seed_group_buy(institution: Institution) -> None:
    """A live group buy of a paid regular course (teams of 3 within 24 hours), and the
    Stripe settings that point its webhooks at localstripe's signing secret."""
    payments.save_account(institution, webhook_secret=DEMO_WEBHOOK_SECRET)
    course = courses.save_course(
        institution,
        None,
        title="寒假数学提高班 · Winter maths course",
        kind=CourseKind.REGULAR,
        subject="数学",
        grade_range="3–5 年级",
        description="八节课，每周两次，小班教学。",
        capacity=12,
        price_amount=99900,
    )
    today = datetime.now(institution.zone).date()
    for week in range(4):
        for day in (14, 17):
            starts = datetime.combine(
                today + timedelta(days=day + 7 * week), time(10, 0), tzinfo=institution.zone
            )
            courses.add_lesson(
                course, starts_at=starts.astimezone(UTC), duration_minutes=90, place="徐汇校区 2 楼"
            )
    now = datetime.now(UTC)
    group_buy = campaigns.save_group_buy(
        institution,
        None,
        title="3 人拼团 · 寒假数学提高班",
        description=(
            "三位家长成团即享拼团价：原价 ¥999，拼团 ¥599，团长 ¥499。"
            "支付后仅预授权，成团后才扣款；24 小时内未成团自动取消，不扣任何费用。"
        ),
        course_id=course.id,
        list_price_amount=99900,
        group_price_amount=59900,
        leader_price_amount=49900,
        team_size=3,
        team_hours=24,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=14),
        team_limit=None,
        per_contact_limit=1,
    )
    for row in (course, group_buy):  # a picture at the top of their pages and link cards
        row.cover, row.cover_content_type, row.cover_updated_at = _cover(), "image/png", now
    # Without Stripe (seed-demo outside `cohort dev`) it stays a draft.
    with contextlib.suppress(ServiceError):
        campaigns.publish_group_buy(institution, group_buy, "demo")


def _seed_flash_sale(institution: Institution) -> None:
    """A flash sale of the paid course, live for two days: 20 seats at ¥199, one a family,
    ten minutes to pay. Without Stripe it stays a draft, as the group buy does."""
    course = db.session.scalar(
        select(Course).where(Course.institution_id == institution.id, Course.price_amount > 0)
    )
    if course is None:
        return
    now = datetime.now(UTC)
    sale = campaigns.save_flash_sale(
        institution,
        None,
        title="寒假班秒杀 · 20 个名额 ¥199",
        description="寒假数学提高班限时秒杀：原价 ¥999，秒杀价 ¥199，每个家庭限购 1 个名额。",
        course_id=course.id,
        list_price_amount=course.price_amount,
        sale_price_amount=19900,
        stock=20,
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(days=2),
        per_family_limit=1,
        pay_minutes=10,
    )
    sale.cover, sale.cover_content_type, sale.cover_updated_at = _cover(), "image/png", now
    with contextlib.suppress(ServiceError):
        campaigns.publish_flash_sale(institution, sale)


def _cover(size: tuple[int, int] = (1200, 630)) -> bytes:
    """A cover picture for the demo's pages: a warm gradient with a few soft circles (the
    size of a link preview card)."""
    width, height = size
    picture = Image.new("RGB", size)
    draw = ImageDraw.Draw(picture)
    for y in range(height):
        t = y / height
        draw.line(
            [(0, y), (width, y)], fill=(int(15 + 200 * t), int(118 + 40 * t), int(110 - 40 * t))
        )
    for x, y, r in ((180, 160, 120), (980, 420, 200), (620, 80, 60)):
        draw.ellipse([x - r, y - r, x + r, y + r], outline=(255, 255, 255), width=6)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
