"""A parent posts three phone photos that together weigh more than one request may carry:
the page makes them smaller in the browser (static/js/shrink_pictures.js) before it sends
them, so the post and its text arrive instead of a refusal."""

from __future__ import annotations

import io
import os
from urllib.parse import urlsplit

from PIL import Image
from sqlalchemy import select

from app.contacts.services import parent_page_url
from app.extensions import db
from app.groups.models import Post
from tests.groups.test_groups import make_family, make_group

CAP = 10 * 1024 * 1024  # MAX_CONTENT_LENGTH for the test; the photos weigh ~24 MB together


def phone_photo(path, size=(4000, 3000)) -> int:
    """A 12-megapixel JPEG as a phone takes it (soft shapes and sensor grain, ~8 MB)."""
    shapes = Image.frombytes("RGB", (400, 300), os.urandom(400 * 300 * 3))
    grain = Image.frombytes("L", size, os.urandom(size[0] * size[1])).convert("RGB")
    picture = Image.blend(shapes.resize(size, Image.BILINEAR), grain, 0.15)
    picture.save(path, "JPEG", quality=95)
    return path.stat().st_size


def test_photos_too_heavy_together_are_made_smaller_in_the_browser_and_the_post_arrives(
    app, live_server, phone, tenant, tmp_path, monkeypatch
):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", CAP)
    group, _invite = make_group(tenant)
    from app.groups import services as groups

    member = groups.add_member(tenant, group, make_family(tenant, 1))
    db.session.commit()
    photos = [tmp_path / f"IMG_000{n}.jpg" for n in range(3)]
    assert sum(phone_photo(path) for path in photos) > CAP  # as chosen, refused whole

    phone.goto(live_server + urlsplit(parent_page_url(tenant, member.contact)).path)
    phone.goto(f"{live_server}/{tenant.slug}/g/{group.code}")
    phone.fill("#body", "今天的手工作品")
    phone.set_input_files("#pictures", [str(path) for path in photos])
    phone.click("form.post-form button[type=submit]")
    phone.wait_for_selector("#feed >> text=今天的手工作品", timeout=30_000)

    db.session.expire_all()
    post = db.session.scalar(select(Post).where(Post.group_id == group.id))
    assert post.body == "今天的手工作品" and len(post.images) == 3
    for image in post.images:
        assert max(Image.open(io.BytesIO(image.data)).size) <= 2048
