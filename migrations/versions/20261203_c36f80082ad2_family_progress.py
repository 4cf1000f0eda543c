"""Where each family came from and how far it has come (`family_progress`, one row per
contact), under row-level security like every tenant table (20261201_e7f8a9b0c1d2): the
dashboard's funnel reads these rows by the institution's index on the day each family was
first seen, instead of parsing every lead event's JSON and joining every first touch. The
rows of existing contacts are computed here from their first touch, their lead events and
their newest lead (`backfill`, which bench/dashboard.py also runs on its generated data).
The funnel's index on the lead events goes: nothing reads them that way any more.

Revision ID: c36f80082ad2
Revises: 9d4e2b7c5a10
Create Date: 2026-12-01 17:53:51.475054
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import and_, case, func, literal, or_, select


revision: str = 'c36f80082ad2'
down_revision: str | None = '9d4e2b7c5a10'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT = "institution_id = cohort_institution()"

# As app/contacts/models.py had them when this revision was written.
REFERRER_FAMILIES = (
    ("wechat", ("weixin.qq.com", "wx.qq.com", "servicewechat.com", "weixin")),
    ("douyin", ("douyin.com", "iesdouyin.com")),
    ("xiaohongshu", ("xiaohongshu.com", "xhslink.com")),
    ("weibo", ("weibo.com", "weibo.cn")),
    ("qq", ("qq.com",)),
    ("baidu", ("baidu.com",)),
    ("google", ("google.",)),
    ("bing", ("bing.com",)),
)
RANKS = {"new": 1, "contacted": 2, "trial_booked": 3, "trial_attended": 4, "enrolled": 5}
STAGES = ("lead_at", "contacted_at", "booked_at", "attended_at", "enrolled_at")

contacts = sa.table(
    "contacts",
    sa.column("id"),
    sa.column("institution_id"),
    sa.column("created_at"),
    sa.column("first_touch_id"),
)
touches = sa.table(
    "contact_touches",
    sa.column("id"),
    sa.column("kind"),
    sa.column("ref"),
    sa.column("referral_code"),
    sa.column("utm_source"),
    sa.column("utm_medium"),
    sa.column("utm_campaign"),
    sa.column("referrer"),
)
events = sa.table(
    "contact_events",
    sa.column("institution_id"),
    sa.column("contact_id"),
    sa.column("kind"),
    sa.column("data", sa.JSON),
    sa.column("created_at"),
)
leads = sa.table(
    "leads", sa.column("id"), sa.column("institution_id"), sa.column("contact_id"), sa.column("owner_id")
)
progress = sa.table(
    "family_progress",
    *[sa.column(name) for name in (
        "institution_id", "contact_id", "first_seen_at", "channel", "form", "campaign",
        "utm_source", "utm_medium", "utm_campaign", "referrer", "rank", *STAGES, "lead_id",
        "owner_id",
    )],
)


def backfill(connection, institution_id: int | None = None) -> None:
    """Write the progress row of every contact (of one institution, with `institution_id`)
    from its first touch, the earliest lead event that took it to each stage, and its
    newest lead's owner."""

    def mine(table):
        return True if institution_id is None else table.c.institution_id == institution_id

    to = events.c.data["to"].as_string()
    firsts = (
        select(events.c.contact_id, to.label("stage"), func.min(events.c.created_at).label("at"))
        .where(mine(events), events.c.kind == "lead")
        .group_by(events.c.contact_id, to)
        .subquery("firsts")
    )
    rank = case(*[(firsts.c.stage == stage, n) for stage, n in RANKS.items()], else_=0)
    reached = (
        select(
            firsts.c.contact_id,
            func.max(rank).label("rank"),
            *[func.min(case((rank >= n, firsts.c.at))).label(STAGES[n - 1]) for n in range(1, 6)],
        )
        .group_by(firsts.c.contact_id)
        .subquery("reached")
    )
    newest = (
        select(leads.c.contact_id, func.max(leads.c.id).label("id"))
        .where(mine(leads))
        .group_by(leads.c.contact_id)
        .subquery("newest")
    )
    lead = leads.alias("lead")
    lowered = func.lower(touches.c.referrer)
    referrer = case(
        (or_(touches.c.referrer.is_(None), touches.c.referrer == ""), literal("direct")),
        *[
            (or_(*[lowered.contains(host, autoescape=True) for host in hosts]), literal(name))
            for name, hosts in REFERRER_FAMILIES
        ],
        else_=literal("other"),
    )
    channel = case(
        (or_(touches.c.referral_code.is_not(None), touches.c.kind == "referral"), "referral"),
        else_=func.coalesce(touches.c.kind, ""),
    )
    rows = (
        select(
            contacts.c.institution_id,
            contacts.c.id,
            contacts.c.created_at,
            channel,
            case((touches.c.kind == "form", touches.c.ref)),
            case((touches.c.kind == "campaign", touches.c.ref)),
            func.coalesce(touches.c.utm_source, ""),
            func.coalesce(touches.c.utm_medium, ""),
            func.coalesce(touches.c.utm_campaign, ""),
            referrer,
            func.coalesce(reached.c.rank, 0),
            *[reached.c[name] for name in STAGES],
            newest.c.id,
            lead.c.owner_id,
        )
        .select_from(contacts)
        .outerjoin(touches, touches.c.id == contacts.c.first_touch_id)
        .outerjoin(reached, reached.c.contact_id == contacts.c.id)
        .outerjoin(newest, newest.c.contact_id == contacts.c.id)
        .outerjoin(lead, lead.c.id == newest.c.id)
        .where(mine(contacts))
    )
    connection.execute(
        progress.insert().from_select([column.name for column in progress.c], rows)
    )


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table('family_progress',
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('form', sa.String(length=64), nullable=True),
    sa.Column('campaign', sa.String(length=64), nullable=True),
    sa.Column('utm_source', sa.String(length=100), nullable=False),
    sa.Column('utm_medium', sa.String(length=100), nullable=False),
    sa.Column('utm_campaign', sa.String(length=100), nullable=False),
    sa.Column('referrer', sa.String(length=16), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('lead_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('contacted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('booked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['institution_id', 'contact_id'], ['contacts.institution_id', 'contacts.id'], name=op.f('fk_family_progress_institution_id_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_family_progress_institution_id_institutions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_family_progress_owner_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('contact_id', name=op.f('pk_family_progress'))
    )
    op.create_index(op.f('ix_family_progress_institution_id'), 'family_progress', ['institution_id'], unique=False)
    op.create_index('ix_family_progress_institution_seen', 'family_progress', ['institution_id', 'first_seen_at'], unique=False)
    op.drop_index(op.f('ix_contact_events_institution_kind_created'), table_name='contact_events')
    # ### end Alembic commands ###
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE family_progress ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE family_progress FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON family_progress USING ({TENANT}) "
            f"WITH CHECK ({TENANT})"
        )
    backfill(op.get_bind())


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP POLICY tenant_isolation ON family_progress")
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_index(op.f('ix_contact_events_institution_kind_created'), 'contact_events', ['institution_id', 'kind', 'created_at'], unique=False)
    op.drop_index('ix_family_progress_institution_seen', table_name='family_progress')
    op.drop_index(op.f('ix_family_progress_institution_id'), table_name='family_progress')
    op.drop_table('family_progress')
    # ### end Alembic commands ###
