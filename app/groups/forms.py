from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from app.forms import (
    CohortForm,
    local_datetime_field,
    pictures_field,
    strip_filter,
    uploaded_pictures,
)
from app.groups.models import (
    GROUP_KIND_LABELS,
    MAX_POST_IMAGES,
    MAX_POST_LENGTH,
    MEMBER_ROLE_LABELS,
    OUTCOME_LABELS,
    GroupKind,
    MemberRole,
    Outcome,
)

_OUTCOMES = [SelectChoice(outcome.value, label) for outcome, label in OUTCOME_LABELS.items()]


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class GroupForm(CohortForm):
    title = StringField(
        _l("Name"), filters=[strip_filter], validators=[DataRequired(), Length(max=120)]
    )
    kind = SelectField(
        _l("Kind"),
        choices=[SelectChoice(kind.value, label) for kind, label in GROUP_KIND_LABELS.items()],
        default=GroupKind.OPEN.value,
    )
    course_id = SelectField(
        _l("Course"),
        coerce=int,
        default=0,
        description=_l(
            "Families registering for it are offered this group on their confirmation page."
        ),
    )
    description = TextAreaField(
        _l("Description"), filters=[strip_filter], validators=[Length(max=2000)]
    )
    rules = TextAreaField(
        _l("Group rules (群规)"),
        filters=[strip_filter],
        validators=[DataRequired(), Length(max=4000)],
        description=_l("Shown to every family before they join; they must accept them."),
    )
    member_cap = IntegerField(
        _l("Member limit (optional)"), validators=[Optional(), NumberRange(2, 100_000)]
    )
    needs_approval = BooleanField(_l("Staff approve each family that asks to join"))
    close_days_after_last_lesson = IntegerField(
        _l("Close this many days after the course's last lesson (optional)"),
        validators=[Optional(), NumberRange(0, 365)],
    )
    farewell = TextAreaField(
        _l("Farewell post (optional)"),
        filters=[strip_filter],
        validators=[Length(max=MAX_POST_LENGTH)],
        description=_l(
            "Posted as an announcement when the group closes, and sent to every member: "
            "thank the families and offer them the course that follows."
        ),
    )
    closes_at = local_datetime_field(
        _l("Closes on (optional)"),
        required=False,
        description=_l(
            "After this, nobody can join or post. A trial group usually closes a "
            "few days after its last lesson."
        ),
    )
    link_outcome = SelectField(
        _l("A post with a link"), choices=_OUTCOMES, default=Outcome.HOLD.value
    )
    qr_outcome = SelectField(
        _l("A post with a QR code in a picture"), choices=_OUTCOMES, default=Outcome.HOLD.value
    )
    phone_outcome = SelectField(
        _l("A post with a phone number"), choices=_OUTCOMES, default=Outcome.HOLD.value
    )
    wechat_outcome = SelectField(
        _l("A post with a WeChat ID"), choices=_OUTCOMES, default=Outcome.HOLD.value
    )
    keyword_outcome = SelectField(
        _l("A post with a listed word"), choices=_OUTCOMES, default=Outcome.BLOCK.value
    )
    allowed_domains = TextAreaField(
        _l("Sites members may link to"),
        filters=[strip_filter],
        validators=[Length(max=2000)],
        description=_l("One domain per line, for example example.edu.cn."),
    )
    keywords = TextAreaField(
        _l("Words not allowed"),
        filters=[strip_filter],
        validators=[Length(max=4000)],
        description=_l("One word or phrase per line."),
    )
    flood_posts = IntegerField(
        _l("Posts a member may write in 30 seconds"),
        default=5,
        validators=[DataRequired(), NumberRange(1, 100)],
    )
    new_member_mute_minutes = IntegerField(
        _l("New members may post after (minutes)"),
        default=0,
        validators=[Optional(), NumberRange(0, 7 * 24 * 60)],
    )
    strikes_to_mute = IntegerField(
        _l("Mute a member after this many held or blocked posts (optional)"),
        validators=[Optional(), NumberRange(1, 100)],
    )

    def validate_allowed_domains(self, field) -> None:
        for line in _lines(field.data):
            if " " in line or "." not in line or len(line) > 253:
                raise ValidationError(_l("“%(line)s” is not a domain.", line=line))

    def settings(self) -> dict:
        """The group's columns from the form."""
        return {
            "title": self.title.data,
            "kind": GroupKind(self.kind.data),
            "course_id": self.course_id.data or None,
            "description": self.description.data or None,
            "rules": self.rules.data,
            "member_cap": self.member_cap.data,
            "needs_approval": self.needs_approval.data,
            "close_days_after_last_lesson": self.close_days_after_last_lesson.data,
            "farewell": self.farewell.data or None,
            "link_outcome": Outcome(self.link_outcome.data),
            "phone_outcome": Outcome(self.phone_outcome.data),
            "wechat_outcome": Outcome(self.wechat_outcome.data),
            "keyword_outcome": Outcome(self.keyword_outcome.data),
            "qr_outcome": Outcome(self.qr_outcome.data),
            "allowed_domains": [line.lower() for line in _lines(self.allowed_domains.data)],
            "keywords": _lines(self.keywords.data),
            "flood_posts": self.flood_posts.data,
            "new_member_mute_minutes": self.new_member_mute_minutes.data or 0,
            "strikes_to_mute": self.strikes_to_mute.data,
        }


class InviteForm(CohortForm):
    label = StringField(
        _l("Where you will share it (optional)"),
        filters=[strip_filter],
        validators=[Length(max=80)],
    )
    expires_at = local_datetime_field(_l("Expires (optional)"), required=False)
    use_cap = IntegerField(_l("Uses at most (optional)"), validators=[Optional(), NumberRange(1)])


class JoinForm(CohortForm):
    accept_rules = BooleanField(
        _l("I have read the group rules and will follow them"),
        validators=[DataRequired(_l("Please accept the group rules to join."))],
    )


class PostForm(CohortForm):
    body = TextAreaField(
        _l("Write something"),
        filters=[strip_filter],
        validators=[DataRequired(), Length(max=MAX_POST_LENGTH)],
    )
    pictures = pictures_field(MAX_POST_IMAGES)
    is_question = BooleanField(_l("A question for the teacher"))

    def uploaded_pictures(self) -> list[bytes]:
        return uploaded_pictures(self.pictures)


class ReplyForm(CohortForm):
    body = TextAreaField(
        _l("Reply"),
        filters=[strip_filter],
        validators=[DataRequired(), Length(max=MAX_POST_LENGTH)],
    )


class AnnouncementForm(CohortForm):
    body = TextAreaField(
        _l("Announcement"),
        filters=[strip_filter],
        validators=[DataRequired(), Length(max=MAX_POST_LENGTH)],
    )
    pinned = BooleanField(_l("Pin it to the top of the group"))
    publish_at = local_datetime_field(
        _l("Publish at (optional)"),
        required=False,
        description=_l("Leave empty to publish now. Every member is notified once."),
    )


class MuteForm(CohortForm):
    hours = IntegerField(
        _l("Mute for (hours)"), default=24, validators=[DataRequired(), NumberRange(1, 24 * 365)]
    )


class RoleForm(CohortForm):
    role = SelectField(
        _l("Role"),
        choices=[SelectChoice(role.value, label) for role, label in MEMBER_ROLE_LABELS.items()],
        default=MemberRole.MEMBER.value,
    )
