"""CSRF on every state-changing route, security headers, production refusals, health."""

from __future__ import annotations

import pytest
import redis

from app.config import ConfigError, load_config
from app.contacts.models import Contact
from app.extensions import db, redis_connection
from tests.factories import (
    make_course,
    make_form,
    make_group_buy,
)
from tests.helpers import (
    FAMILY,
    ON_POSTGRESQL,
    committed_data,
    committed_institution,
    count,
    database_down_from,
    login,
    parent,
)

ANSWERS = {
    "parent_name": "Wang Fang",
    "phone": "138 0013 8000",
    "child_name": "Leo",
    "subject": "Maths",
    "consent": "y",
}

# Routes that take POST without a CSRF token: only Stripe's webhook, which is verified by
# its signature on the raw body instead (tests/payments/test_webhooks.py).
CSRF_EXEMPT: set[str] = {"stripe_webhooks.webhook"}


def test_every_post_route_refuses_a_missing_csrf_token(app, client, owner, institution):
    login(client, owner)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        checked = 0
        for rule in app.url_map.iter_rules():
            if "POST" not in rule.methods or rule.endpoint in CSRF_EXEMPT:
                continue
            values = {name: 1 for name in rule.arguments}
            values["institution_slug"] = institution.slug
            values["token"] = "x"
            path = rule.build({k: v for k, v in values.items() if k in rule.arguments})[1]
            response = client.post(path, data={})
            assert response.status_code == 400, (rule.rule, response.status_code)
            assert "This form has expired" in response.get_data(as_text=True)
            checked += 1
        assert checked >= 10
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_pages_carry_security_headers(client):
    response = client.get("/login")
    headers = response.headers
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_session_cookie_is_http_only_and_lax(client, owner):
    response = login(client, owner)
    cookie = response.headers.get("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.mark.parametrize("secret", ["", "dev-only-insecure-secret-key", "short"])
def test_production_refuses_a_weak_secret_key(secret):
    env = {
        "COHORT_ENV": "production",
        "SECRET_KEY": secret,
        "REDIS_URL": "redis://r",
        "DATABASE_URL": "postgresql://db/cohort",
    }
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config(environ=env)


def test_production_config_is_safe_by_default():
    env = {
        "COHORT_ENV": "production",
        "SECRET_KEY": "s" * 64,
        "REDIS_URL": "redis://r",
        "DATABASE_URL": "postgresql://db/cohort",
    }
    config = load_config(environ=env)
    assert config["DEBUG"] is False
    assert config["SESSION_COOKIE_SECURE"] and config["REMEMBER_COOKIE_SECURE"]
    assert config["FORCE_HTTPS"]
    with pytest.raises(ConfigError, match="REDIS_URL"):
        load_config(environ={**env, "REDIS_URL": ""})
    with pytest.raises(ConfigError, match="PostgreSQL"):
        load_config(environ={**env, "DATABASE_URL": "sqlite:///x.db"})


def test_healthz_answers_without_the_database_and_the_deep_one_checks_both(client):
    assert client.get("/healthz").json == {"status": "ok"}
    response = client.get("/healthz/deep")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_healthz_is_503_and_names_what_failed(client, monkeypatch):
    # A real client for a Redis that is not there: nothing listens on port 1.
    monkeypatch.setattr(
        redis_connection, "client", redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    )
    assert client.get("/healthz").status_code == 200  # the process itself is fine
    response = client.get("/healthz/deep")
    assert response.status_code == 503
    assert response.json["checks"]["database"] == "ok"
    assert response.json["checks"]["redis"].startswith("error")


def test_unknown_pages_and_methods_are_clear_errors_not_500(client):
    assert client.get("/nothing/here/at/all").status_code == 404
    assert client.delete("/login").status_code == 405
    response = client.get("/nothing", headers={"Accept": "application/json"})
    assert response.status_code == 404 and response.json["error"] == "not_found"


def test_next_parameter_cannot_redirect_off_site(client, owner):
    for target in ("https://evil.example/", "//evil.example/", "javascript:alert(1)"):
        response = client.post(
            f"/login?next={target}",
            data={"email": owner.email, "password": "correct-horse-battery"},
        )
        assert response.headers["Location"] in (
            "/",
            "/staff/" + owner.memberships[0].institution.slug + "/",
        )
        client.post("/logout")


def test_every_public_form_answers_a_filled_honeypot_the_same_way_and_keeps_nothing(
    client, institution
):
    """A bot that fills the hidden field gets the same thank-you from every public form,
    and nothing of what it sent is kept."""

    lead_form, course, group_buy = (
        make_form(institution),
        make_course(institution),
        make_group_buy(institution),
    )
    posts = [
        (f"/{institution.slug}/f/{lead_form.code}", {**FAMILY, "subject": "Maths"}),
        (f"/{institution.slug}/c/{course.code}", {**FAMILY, "lessons": course.lessons[0].id}),
        (f"/{institution.slug}/gb/{group_buy.code}", parent(1)),
    ]
    for path, data in posts:
        response = client.post(path, data={**data, "website": "https://spam.example"})
        assert response.status_code == 200, path
        assert "Thank you!" in response.get_data(as_text=True), path
    assert count(Contact) == 0


@pytest.mark.committed
@pytest.mark.skipif(not ON_POSTGRESQL, reason="terminates a PostgreSQL backend")
def test_a_database_lost_in_the_middle_of_a_post_is_a_503_page_that_changed_nothing(app):
    """PostgreSQL drops the request's connection (a restart, a fail-over) as the family's
    contact is being written: the parent gets the "try again" page in their language, not a
    500, even though the page's layout had the institution loaded from that database."""
    with committed_data() as made:
        institution = committed_institution(made, locale="zh_CN")
        url = f"/{institution.slug}/f/{make_form(institution).code}"
        institution_id = institution.id
        db.session.remove()

        with database_down_from("INSERT INTO contacts ("):
            response = app.test_client().post(url, data=ANSWERS)

        assert response.status_code == 503
        assert "刚才未能保存，没有任何改动。请重试。" in response.get_data(as_text=True)
        assert count(Contact, Contact.institution_id == institution_id) == 0
