"""The institution settings page and the logo."""

from __future__ import annotations

import io

from PIL import Image

from app.accounts.models import Role
from app.extensions import db
from tests.factories import make_member
from tests.helpers import login

VALID = {
    "name": "Renamed School",
    "timezone": "Europe/London",
    "currency": "GBP",
    "locale": "en",
    "country": "GB",
    "contact_email": "office@example.com",
    "contact_phone": "020 7946 0018",
    "address": "1 High Street",
}


def png_bytes(size=(64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (15, 118, 110)).save(buffer, format="PNG")
    return buffer.getvalue()


def url(institution) -> str:
    return f"/staff/{institution.slug}/settings"


def test_owner_saves_settings_and_phone_is_normalised(owner_client, institution):
    response = owner_client.post(url(institution), data=VALID)
    assert response.status_code == 302
    db.session.refresh(institution)
    assert institution.name == "Renamed School"
    assert (institution.timezone, institution.currency, institution.country) == (
        "Europe/London",
        "GBP",
        "GB",
    )
    assert institution.contact_phone == "+442079460018"


def test_bad_settings_are_field_errors_and_change_nothing(owner_client, institution):
    before = (institution.name, institution.timezone, institution.currency)
    for field, value in [
        ("timezone", "Nowhere/City"),
        ("currency", "BTC"),
        ("locale", "xx"),
        ("country", "ZZ"),
        ("contact_phone", "12"),
        ("contact_email", "nope"),
        ("name", ""),
        ("address", "a" * 301),
    ]:
        response = owner_client.post(url(institution), data={**VALID, field: value})
        assert response.status_code == 422, field
    db.session.refresh(institution)
    assert (institution.name, institution.timezone, institution.currency) == before


def test_logo_upload_checks_the_content_not_the_name(owner_client, institution, client):
    fake = owner_client.post(
        url(institution), data={**VALID, "logo": (io.BytesIO(b"<svg onload=alert(1)>"), "logo.png")}
    )
    assert fake.status_code == 422
    assert "PNG, JPEG or WebP" in fake.get_data(as_text=True)
    wrong_type = owner_client.post(
        url(institution), data={**VALID, "logo": (io.BytesIO(png_bytes()), "logo.svg")}
    )
    assert wrong_type.status_code == 422
    db.session.refresh(institution)
    assert not institution.has_logo and institution.name != "Renamed School"

    ok = owner_client.post(
        url(institution), data={**VALID, "logo": (io.BytesIO(png_bytes()), "logo.png")}
    )
    assert ok.status_code == 302
    logo = client.get(f"/{institution.slug}/logo")
    assert logo.status_code == 200 and logo.headers["Content-Type"] == "image/png"
    assert logo.data == png_bytes()


def test_oversized_logo_is_refused(app, owner_client, institution):
    big = png_bytes() + b"\0" * app.config["LOGO_MAX_BYTES"]
    response = owner_client.post(
        url(institution), data={**VALID, "logo": (io.BytesIO(big), "logo.png")}
    )
    assert response.status_code == 422
    assert "at most 1024 KB" in response.get_data(as_text=True)
    huge = owner_client.post(
        url(institution),
        data={
            **VALID,
            "logo": (io.BytesIO(b"\0" * (app.config["MAX_CONTENT_LENGTH"] + 1)), "l.png"),
        },
    )
    assert huge.status_code == 413


def test_staff_cannot_open_settings(client, institution):
    login(client, make_member(institution, Role.STAFF))
    assert client.get(url(institution)).status_code == 403
