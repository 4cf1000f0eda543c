"""Share posters (海报): a PNG a parent saves to their phone's album and posts in a chat,
drawn on the server with Pillow.

Pure: a `Poster` (words already translated, numbers already formatted, pictures as bytes)
in, PNG bytes out. The views decide what a poster says, from the same queries as the page
it stands for; this module only lays it out. The Chinese font is Noto Sans CJK SC from the
`noto-cjk[sans]` package of the project's own install (never a system font a fresh machine
lacks); it is opened once per process and size.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from dataclasses import dataclass, fields
from functools import cache

import segno
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

WIDTH, HEIGHT = 750, 1334  # the usual poster size of Chinese share posters
COVER_HEIGHT = 500
MARGIN = 56
INK, MUTED, LINE = (31, 41, 51), (97, 110, 124), (228, 231, 235)
BRAND, PRICE, BADGE_BG = (15, 118, 110), (220, 38, 38), (254, 242, 242)
NOTO_SC_INDEX = 2  # Noto Sans CJK SC in the collection (JP, KR, SC, TC, HK, then Mono)

# FreeType faces are not safe to share between threads: one poster is drawn at a time per
# process (a poster is cached by the views, so few are drawn).
_drawing = threading.Lock()


@dataclass(frozen=True)
class Poster:
    title: str
    url: str  # what the QR code opens: the page's link with the sharer's `ref`
    institution: str
    scan_hint: str  # "长按识别二维码"
    price: str | None = None  # "¥99.00"
    price_label: str | None = None  # "拼团价", "秒杀价", "试听价"
    list_price: str | None = None  # "¥199.00", struck through
    badge: str | None = None  # "还差 2 人成团", "剩余 5 个名额", "12 位家长已加入"
    subtitle: str | None = None  # the course sold, a group's kind: one muted line
    sharer: str | None = None  # "王** 邀请你"
    cover: bytes | None = None  # the object's picture; else the logo on a coloured header
    logo: bytes | None = None
    pictures_version: str = ""  # names the cover and logo bytes (their update times)

    def cache_key(self) -> str:
        """A name for what this poster shows: equal keys draw equal PNGs."""
        words = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name not in ("cover", "logo")
        ]
        return hashlib.sha256("\n".join(words).encode()).hexdigest()[:32]


@cache
def _font_file() -> str:
    from noto_cjk import otc_path  # the font package: loaded where posters are drawn only

    return str(otc_path("sans"))


@cache
def font(size: int) -> ImageFont.FreeTypeFont:
    """Noto Sans CJK SC at `size` px, opened once per process (it has Latin letters too)."""
    return ImageFont.truetype(_font_file(), size, index=NOTO_SC_INDEX)


def render(poster: Poster) -> bytes:
    """The poster as PNG bytes, 750×1334."""
    with _drawing:
        image = Image.new("RGB", (WIDTH, HEIGHT), "white")
        draw = ImageDraw.Draw(image)
        _header(image, draw, poster)
        y = COVER_HEIGHT + 36
        if poster.sharer:
            y = _sharer(draw, poster.sharer, y)
        y = _title(draw, poster.title, y)
        if poster.subtitle:
            y = _lines(draw, poster.subtitle, y, font(28), MUTED, max_lines=1) + 8
        if poster.price:
            y = _price(draw, poster, y + 12)
        if poster.badge:
            _badge(draw, poster.badge, y + 20)
        _footer(image, draw, poster)
        out = io.BytesIO()
        image.save(out, format="PNG")
    return out.getvalue()


def _picture(data: bytes | None) -> Image.Image | None:
    """A stored picture, or None when it does not decode (a poster never fails on one)."""
    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture.load()
            picture = ImageOps.exif_transpose(picture)
            if picture.mode in ("RGBA", "LA", "P"):
                picture = picture.convert("RGBA")
                flat = Image.new("RGBA", picture.size, "white")
                flat.alpha_composite(picture)
                return flat.convert("RGB")
            return picture.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


def _header(image: Image.Image, draw: ImageDraw.ImageDraw, poster: Poster) -> None:
    """The cover, cropped to fill the top; without one, the institution's logo and name on
    a coloured band."""
    cover = _picture(poster.cover)
    if cover is not None:
        image.paste(ImageOps.fit(cover, (WIDTH, COVER_HEIGHT), Image.Resampling.LANCZOS), (0, 0))
        return
    draw.rectangle((0, 0, WIDTH, COVER_HEIGHT), fill=BRAND)
    logo = _picture(poster.logo)
    name_font = font(44)
    name = _fit(draw, poster.institution, name_font, WIDTH - 2 * MARGIN)
    name_height = 60
    if logo is not None:
        logo.thumbnail((220, 220), Image.Resampling.LANCZOS)
        plate = Image.new("RGB", (logo.width + 40, logo.height + 40), "white")
        plate.paste(logo, (20, 20))
        top = (COVER_HEIGHT - plate.height - 36 - name_height) // 2
        image.paste(plate, ((WIDTH - plate.width) // 2, top))
        name_top = top + plate.height + 36
    else:
        name_top = (COVER_HEIGHT - name_height) // 2
    draw.text((WIDTH // 2, name_top), name, font=name_font, fill="white", anchor="ma")


def _sharer(draw: ImageDraw.ImageDraw, sharer: str, y: int) -> int:
    """The sharer's masked name beside a round initial, as a chat app shows a person."""
    size = 56
    draw.ellipse((MARGIN, y, MARGIN + size, y + size), fill=BRAND)
    initial = sharer[:1]
    draw.text(
        (MARGIN + size // 2, y + size // 2), initial, font=font(28), fill="white", anchor="mm"
    )
    text = _fit(draw, sharer, font(30), WIDTH - 2 * MARGIN - size - 20)
    draw.text((MARGIN + size + 20, y + size // 2), text, font=font(30), fill=INK, anchor="lm")
    return y + size + 28


def _title(draw: ImageDraw.ImageDraw, title: str, y: int) -> int:
    return _lines(draw, title, y, font(46), INK, max_lines=2, bold=True) + 12


def _price(draw: ImageDraw.ImageDraw, poster: Poster, y: int) -> int:
    x = MARGIN
    baseline = y + 64
    if poster.price_label:
        draw.text((x, baseline), poster.price_label, font=font(30), fill=PRICE, anchor="ls")
        x += int(draw.textlength(poster.price_label, font=font(30))) + 12
    draw.text(
        (x, baseline),
        poster.price,
        font=font(64),
        fill=PRICE,
        anchor="ls",
        stroke_width=1,
        stroke_fill=PRICE,
    )
    x += int(draw.textlength(poster.price, font=font(64))) + 20
    if poster.list_price and x < WIDTH - MARGIN - 60:
        text = _fit(draw, poster.list_price, font(30), WIDTH - MARGIN - x)
        draw.text((x, baseline), text, font=font(30), fill=MUTED, anchor="ls")
        width = draw.textlength(text, font=font(30))
        middle = baseline - 11  # through the digits' middle
        draw.line((x, middle, x + width, middle), fill=MUTED, width=2)
    return baseline + 16


def _badge(draw: ImageDraw.ImageDraw, badge: str, y: int) -> None:
    text = _fit(draw, badge, font(32), WIDTH - 2 * MARGIN - 48)
    width = draw.textlength(text, font=font(32))
    draw.rounded_rectangle((MARGIN, y, MARGIN + width + 48, y + 64), radius=32, fill=BADGE_BG)
    draw.text((MARGIN + 24, y + 32), text, font=font(32), fill=PRICE, anchor="lm")


def _footer(image: Image.Image, draw: ImageDraw.ImageDraw, poster: Poster) -> None:
    """The institution and "long-press to scan" on the left, the QR code on the right."""
    top = HEIGHT - 290
    draw.line((MARGIN, top, WIDTH - MARGIN, top), fill=LINE, width=2)
    qr_size = 220
    qr = _qr(poster.url, qr_size)
    image.paste(qr, (WIDTH - MARGIN - qr_size, top + 40))
    text_width = WIDTH - 2 * MARGIN - qr_size - 32
    y = _lines(draw, poster.institution, top + 60, font(32), INK, max_lines=2, width=text_width)
    _lines(draw, poster.scan_hint, y + 16, font(28), MUTED, max_lines=2, width=text_width)


def _qr(url: str, size: int) -> Image.Image:
    """The QR code of `url` centred on a white `size` px square, every module the same
    whole number of pixels (a scaled code blurs its modules and reads worse)."""
    out = io.BytesIO()
    code = segno.make(url, error="m")
    modules = code.symbol_size(scale=1, border=2)[0]
    code.save(out, kind="png", scale=max(1, size // modules), border=2)
    out.seek(0)
    square = Image.new("RGB", (size, size), "white")
    with Image.open(out) as picture:
        picture = picture.convert("RGB")
        square.paste(picture, ((size - picture.width) // 2, (size - picture.height) // 2))
    return square


# --- text ---------------------------------------------------------------------------------

# A word of Latin letters or digits (kept whole when a line breaks), or one other character
# (Chinese breaks between any two characters).
_TOKENS = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’.,:;!?%¥$€£/-]*\s*|\s+|.", re.S)


def _wrap(draw, text: str, face, width: int) -> list[str]:
    lines, line = [], ""
    for token in _TOKENS.findall(" ".join(text.split())):
        if draw.textlength(line + token, font=face) <= width or not line:
            line += token
        else:
            lines.append(line.rstrip())
            line = token.lstrip()
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _fit(draw, text: str, face, width: int) -> str:
    """`text` on one line, cut with "…" where it would be wider than `width`."""
    text = " ".join(text.split())
    if draw.textlength(text, font=face) <= width:
        return text
    while text and draw.textlength(text + "…", font=face) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _lines(draw, text, y, face, fill, max_lines, width=WIDTH - 2 * MARGIN, bold=False) -> int:
    """Draw `text` wrapped into at most `max_lines` (the last one cut with "…"); returns
    the y below it."""
    lines = _wrap(draw, text, face, width)
    if len(lines) > max_lines:
        joiner = " " if " " in text.strip() else ""
        rest = joiner.join(lines[max_lines - 1 :])
        lines = [*lines[: max_lines - 1], _fit(draw, rest + "…", face, width)]
    height = int(face.size * 1.4)
    for line in lines:
        draw.text(
            (MARGIN, y), line, font=face, fill=fill, stroke_width=1 if bold else 0, stroke_fill=fill
        )
        y += height
    return y
