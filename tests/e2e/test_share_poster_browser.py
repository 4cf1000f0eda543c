"""A parent on a phone (zh-CN) opens a team, saves its poster from the overlay, and a
friend who opened the shared link saves one too: each poster's QR code opens the team
with the leader's referral code. "Copy link" writes the link to the clipboard."""

from __future__ import annotations

from app.extensions import db
from app.images import qr_codes_in
from tests.factories import make_group_buy
from tests.helpers import PHONE, members, only_team


def _open_team(page) -> None:
    page.fill("#parent_name", "王芳")
    page.fill("#phone", "138 0013 8000")
    page.fill("#student_name", "乐乐")
    page.check("#open input[name=consent]")
    page.click("#open form button[type=submit]")


def _saved_poster_codes(page, keep_as=None) -> list[str]:
    """Tap "save poster", wait for the overlay's picture, and read the QR code of the
    picture it shows (kept as the file `keep_as`, to look at)."""
    page.click("[data-poster]")
    image = page.locator(".poster-overlay img.poster-image")
    image.wait_for(state="visible")
    page.wait_for_function(
        "document.querySelector('.poster-overlay img').naturalWidth > 0", timeout=10000
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    src = image.evaluate("img => img.src")
    response = page.request.get(src)
    assert response.status == 200 and response.headers["content-type"] == "image/png"
    if keep_as is not None:
        keep_as.write_bytes(response.body())
    return qr_codes_in(response.body())


def test_a_leader_and_a_friend_save_the_teams_poster(
    live_server, browser, phone, institution, tmp_path
):
    institution.locale = "zh_CN"
    db.session.commit()
    group_buy = make_group_buy(institution, team_size=3)

    phone.goto(f"{live_server}/{institution.slug}/gb/{group_buy.code}")
    if phone.locator(".buy-bar .button-primary").count():  # the form shows after the choice
        phone.click(".buy-bar .button-primary")
    _open_team(phone)
    phone.wait_for_url("**/t/**")
    team = only_team(group_buy)
    code = members(team)[0].contact.referral_code
    team_link = f"http://localhost/{institution.slug}/gb/{group_buy.code}/t/{team.code}"

    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(tmp_path / "team-page.png"), full_page=True)
    codes = _saved_poster_codes(phone, keep_as=tmp_path / "team-poster.png")
    assert codes == [f"{team_link}?ref={code}"]
    overlay = phone.locator(".poster-overlay")
    assert overlay.locator("a[download]").count() == 1
    assert overlay.locator(".poster-hint").inner_text()  # "长按图片保存到相册"
    phone.screenshot(path=str(tmp_path / "leader-poster-overlay.png"))
    phone.click(".poster-close")
    assert overlay.count() == 0

    # A friend opens the shared link (it carries the leader's code) and saves the poster
    # to pass on: it carries the leader's code too.
    context = browser.new_context(**PHONE, locale="zh-CN")
    friend = context.new_page()
    friend.goto(f"{live_server}/{institution.slug}/gb/{group_buy.code}/t/{team.code}?ref={code}")
    assert _saved_poster_codes(friend) == [f"{team_link}?ref={code}"]
    friend.screenshot(path=str(tmp_path / "friend-poster-overlay.png"))
    context.close()


def test_copy_link_writes_the_link_to_the_clipboard(live_server, browser, institution):
    institution.locale = "zh_CN"
    db.session.commit()
    group_buy = make_group_buy(institution, team_size=3)
    context = browser.new_context(**PHONE, locale="zh-CN")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    page = context.new_page()
    page.goto(f"{live_server}/{institution.slug}/gb/{group_buy.code}?ref=abc123")

    page.click("[data-copy]")
    page.wait_for_function("document.querySelector('.share-copied').textContent.length > 0")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == f"http://localhost/{institution.slug}/gb/{group_buy.code}?ref=abc123"
    context.close()


def test_copy_link_falls_back_to_a_selected_field_without_the_clipboard_api(
    live_server, browser, institution
):
    group_buy = make_group_buy(institution, team_size=3)
    context = browser.new_context(**PHONE, locale="zh-CN")
    context.add_init_script("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    page = context.new_page()
    page.goto(f"{live_server}/{institution.slug}/gb/{group_buy.code}")

    page.click("[data-copy]")
    page.wait_for_function("document.querySelector('.share-copied').textContent.length > 0")
    # execCommand copied it (the field is gone), or the link is left selected to copy.
    shown = page.locator(".share-copy-field-shown")
    if shown.count():
        assert shown.input_value().endswith(f"/gb/{group_buy.code}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    context.close()
