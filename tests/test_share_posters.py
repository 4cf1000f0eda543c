"""Share posters (app.posters, app.sharing) and the share tools on the public pages: a
poster decodes, its QR code opens the page with the sharer's `ref`, the sharer's masked
name is only ever a family of the page's institution, and another institution's code is
a 404."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from app import posters, sharing
from app.contacts.models import SourceKind
from app.contacts.services import ContactDetails, StudentDetails, Touch, find_or_create_contact
from app.courses.models import CourseKind
from app.extensions import db
from app.groups import services as groups
from app.images import qr_codes_in
from app.tenancy import bound
from tests.factories import (
    make_course,
    make_flash_sale,
    make_form,
    make_group_buy,
    make_institution,
)
from tests.helpers import members, only_team, open_team, png_bytes


@pytest.fixture
def drawn(monkeypatch) -> list[posters.Poster]:
    """The posters drawn during the test, as they were given to the drawing."""
    seen: list[posters.Poster] = []
    render = posters.render

    def spy(poster):
        seen.append(poster)
        return render(poster)

    monkeypatch.setattr(posters, "render", spy)
    return seen


def family(institution, name: str, phone: str):
    with bound(institution):
        contact, _ = find_or_create_contact(
            institution,
            phone=phone,
            details=ContactDetails(parent_name=name, students=[StudentDetails("乐乐")]),
            touch=Touch(SourceKind.STAFF),
        )
        db.session.commit()
    return contact


def poster_of(response) -> tuple[Image.Image, list[str]]:
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "image/png"
    image = Image.open(io.BytesIO(response.data))
    return image, qr_codes_in(response.data)


@pytest.fixture
def team(client, institution):
    group_buy = make_group_buy(institution, team_size=3)
    assert open_team(client, institution, group_buy, 1).status_code == 302
    return only_team(group_buy)


def test_team_poster_carries_the_sharers_ref_and_masked_name(client, institution, team, drawn):
    leader = members(team)[0].contact
    code = leader.referral_code
    url = f"/{institution.slug}/gb/{team.group_buy.code}/t/{team.code}/poster.png"

    image, codes = poster_of(client.get(f"{url}?ref={code}&lang=zh_CN"))

    assert image.size == (750, 1334)
    team_link = f"http://localhost/{institution.slug}/gb/{team.group_buy.code}/t/{team.code}"
    assert codes == [f"{team_link}?ref={code}"]
    (poster,) = drawn
    assert poster.sharer.startswith(leader.parent_name[:1] + "**")
    assert poster.title == team.group_buy.title
    # The numbers are the page's: two more families fill this team of three.
    assert client.get(f"{url}?lang=en").status_code == 200
    assert drawn[-1].badge == "2 more families needed"
    assert drawn[-1].price.endswith("¥199.00") and drawn[-1].list_price.endswith("¥499.00")


def test_a_ref_that_is_no_family_of_this_institution_draws_no_sharer(
    client, institution, team, drawn
):
    other = make_institution(slug="other-school")
    db.session.commit()
    stranger = family(other, "赵敏", "13900139000")
    url = f"/{institution.slug}/gb/{team.group_buy.code}/t/{team.code}/poster.png"

    _image, codes = poster_of(client.get(f"{url}?ref={stranger.referral_code}"))
    assert drawn[-1].sharer is None
    assert codes[0].endswith(f"?ref={stranger.referral_code}")  # still credited, if it is ever

    for bad in ["<script>", "x" * 200, "a b", "%00", ""]:
        _image, codes = poster_of(client.get(url, query_string={"ref": bad}))
        assert drawn[-1].sharer is None
        assert "ref=" not in codes[0]


def test_another_institutions_codes_are_404(client, institution, team):
    other = make_institution(slug="other-school")
    db.session.commit()
    course = make_course(institution)
    sale = make_flash_sale(institution)
    form = make_form(institution)
    with bound(institution):
        group = groups.create_group(institution, title="三年级家长群", rules="友善交流")
        invite = groups.create_invite(institution, group)
        db.session.commit()
    group_buy = team.group_buy
    paths = [
        f"gb/{group_buy.code}/poster.png",
        f"gb/{group_buy.code}/t/{team.code}/poster.png",
        f"fs/{sale.code}/poster.png",
        f"c/{course.code}/poster.png",
        f"f/{form.code}/poster.png",
        f"j/{invite.code}/poster.png",
    ]
    for path in paths:
        assert client.get(f"/{institution.slug}/{path}").status_code == 200, path
        assert client.get(f"/{other.slug}/{path}").status_code == 404, path
    assert (
        client.get(f"/{institution.slug}/gb/{group_buy.code}/t/nope/poster.png").status_code == 404
    )
    assert client.get(f"/{institution.slug}/gb/nope/poster.png").status_code == 404


def test_every_poster_links_to_its_page(client, institution, drawn):
    course = make_course(institution, kind=CourseKind.TRIAL, price_amount=990, capacity=4)
    sale = make_flash_sale(institution)
    form = make_form(institution)
    with bound(institution):
        group = groups.create_group(institution, title="三年级家长群", rules="友善交流")
        invite = groups.create_invite(institution, group)
        groups.add_member(institution, group, family(institution, "王芳", "13800138000"))
        db.session.commit()
    sharer = family(institution, "李娜", "13800138001")
    base = f"http://localhost/{institution.slug}"
    cases = [
        (f"c/{course.code}", f"{base}/c/{course.code}", "4 seats left", "Trial price"),
        (f"fs/{sale.code}", f"{base}/fs/{sale.code}", "5 seats left", "Flash sale price"),
        (f"f/{form.code}", f"{base}/f/{form.code}", None, None),
        (f"j/{invite.code}", f"{base}/j/{invite.code}?via=qr", "1 family has joined", None),
    ]
    for path, link, badge, label in cases:
        response = client.get(f"/{institution.slug}/{path}/poster.png?ref={sharer.referral_code}")
        _image, codes = poster_of(response)
        joiner = "&" if "?" in link else "?"
        assert codes == [f"{link}{joiner}ref={sharer.referral_code}"], path
        assert drawn[-1].badge == badge and drawn[-1].price_label == label, path
        assert drawn[-1].sharer == "李** invites you"


def test_a_lead_forms_poster_keeps_the_links_utm_and_staff_ref(client, institution):
    form = make_form(institution)
    response = client.get(
        f"/{institution.slug}/f/{form.code}/poster.png?utm_source=wechat&ref=staff-7"
    )
    _image, codes = poster_of(response)
    assert codes == [
        f"http://localhost/{institution.slug}/f/{form.code}?utm_source=wechat&ref=staff-7"
    ]


def test_a_poster_shows_the_cover_and_is_drawn_once(client, institution, drawn):
    group_buy = make_group_buy(institution)
    group_buy.cover = png_bytes((1200, 800))
    group_buy.cover_content_type = "image/png"
    group_buy.cover_updated_at = group_buy.updated_at
    db.session.commit()
    url = f"/{institution.slug}/gb/{group_buy.code}/poster.png"
    first = client.get(url)
    again = client.get(url)
    assert first.data == again.data and len(drawn) == 1  # kept in Redis
    assert drawn[0].cover is not None
    assert client.get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    assert client.get(f"{url}?download=1").headers["Content-Disposition"].startswith("attachment")


def test_posters_are_limited_per_address(client, institution):
    group_buy = make_group_buy(institution)
    url = f"/{institution.slug}/gb/{group_buy.code}/poster.png"
    statuses = [client.get(url).status_code for _ in range(31)]
    assert statuses[:30] == [200] * 30 and statuses[30] == 429
    # The page itself is never limited.
    assert client.get(f"/{institution.slug}/gb/{group_buy.code}").status_code == 200


def test_a_broken_cover_draws_a_poster_all_the_same():
    poster = posters.Poster(
        title="寒假数学营",
        url="http://localhost/x",
        institution="启明教育",
        scan_hint="长按识别二维码",
        cover=b"not a picture",
        logo=b"\x89PNG broken",
    )
    data = posters.render(poster)
    assert Image.open(io.BytesIO(data)).size == (750, 1334)
    assert qr_codes_in(data) == ["http://localhost/x"]


def test_with_ref_replaces_and_refuses_bad_codes():
    assert sharing.with_ref("http://x/a?ref=old&u=1", "new") == "http://x/a?u=1&ref=new"
    assert sharing.with_ref("http://x/a", "<b>") == "http://x/a"
    assert sharing.with_ref("http://x/a", None) == "http://x/a"


def test_public_pages_offer_the_share_tools_and_link_previews(client, institution, team):
    group_buy = team.group_buy
    course = make_course(institution)
    form = make_form(institution)
    with bound(institution):
        group = groups.create_group(institution, title="三年级家长群", rules="友善交流")
        invite = groups.create_invite(institution, group)
        db.session.commit()
    pages = {
        f"gb/{group_buy.code}": f"gb/{group_buy.code}/poster.png",
        f"gb/{group_buy.code}/t/{team.code}": f"gb/{group_buy.code}/t/{team.code}/poster.png",
        f"c/{course.code}": f"c/{course.code}/poster.png",
        f"f/{form.code}": f"f/{form.code}/poster.png",
        f"j/{invite.code}": f"j/{invite.code}/poster.png",
    }
    for page, poster in pages.items():
        html = client.get(f"/{institution.slug}/{page}").get_data(as_text=True)
        assert f'data-poster="/{institution.slug}/{poster}' in html, page
        assert "data-copy=" in html and "js/share.js" in html, page
        for tag in ("og:title", "og:description"):
            assert f'property="{tag}"' in html, (page, tag)
