"""Simplified Chinese and English everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from app.config import PROJECT_ROOT
from app.extensions import db
from tests.helpers import login

KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}


def source_messages() -> set[str]:
    with open(PROJECT_ROOT / "babel.cfg") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        PROJECT_ROOT, method_map, options_map, keywords=KEYWORDS
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


@pytest.mark.parametrize("language", ["zh_Hans_CN", "en"])
def test_catalog_translates_every_message_in_the_code(language):
    # Babel reads "zh_CN" as zh_Hans_CN, and gettext looks for that folder name.
    path = Path(PROJECT_ROOT / f"app/translations/{language}/LC_MESSAGES/messages.po")
    catalog = read_po(path.open("rb"), locale=language)
    translated = {
        (m.id if isinstance(m.id, str) else m.id[0])
        for m in catalog
        if m.id and not m.fuzzy and (m.string if isinstance(m.string, str) else all(m.string))
    }
    missing = source_messages() - translated
    assert not missing, (
        f"untranslated in {language}: {sorted(missing)[:10]} - run pybabel extract/update "
        "(README, Translations)"
    )


def test_institution_default_language_applies_and_visitor_can_switch(client, institution, owner):
    institution.locale = "zh_CN"
    db.session.commit()
    login(client, owner)
    home = client.get(f"/staff/{institution.slug}/").get_data(as_text=True)
    assert "快速上手" in home and 'lang="zh-CN"' in home

    client.get("/lang/en?next=/")
    assert "Get started" in client.get(f"/staff/{institution.slug}/").get_data(as_text=True)


def test_browser_language_picks_the_page_language(client):
    page = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "忘记密码？" in page.get_data(as_text=True)
    page = client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Forgot your password?" in page.get_data(as_text=True)


def test_unknown_language_is_ignored(client):
    response = client.get("/lang/fr?next=/login")
    assert response.status_code == 302
    page = client.get("/login?lang=xx", headers={"Accept-Language": "en"})
    assert page.status_code == 200 and "Forgot your password?" in page.get_data(as_text=True)


def test_form_errors_come_in_the_visitors_language(client):
    page = client.post(
        "/login?lang=zh_CN", data={"email": "a@example.com", "password": "wrong-password"}
    )
    assert "邮箱或密码错误。" in page.get_data(as_text=True)
    signup = client.post("/signup?lang=zh_CN", data={"slug": "staff"})
    assert "该地址为保留地址" in signup.get_data(as_text=True)


def test_emails_use_the_institutions_language(client, mail_server):
    from app.jobs import run_burst

    client.post(
        "/signup",
        data={
            "name": "星星艺术",
            "slug": "xingxing",
            "timezone": "Asia/Shanghai",
            "currency": "CNY",
            "locale": "zh_CN",
            "owner_name": "陈老师",
            "email": "chen@example.com",
            "password": "a-long-password",
            "confirm": "a-long-password",
            "accept_terms": "y",
        },
        headers={"Accept-Language": "en"},
    )
    run_burst()
    [mail] = mail_server.to("chen@example.com")
    assert mail["Subject"] == "陈老师，欢迎使用 Cohort"
