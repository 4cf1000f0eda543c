"""The text checks every community post goes through before anyone else reads it.

A parents' group left to itself turns into an ad group: tutors from elsewhere, shops and
"study material" sellers join to take the families somewhere they can sell to them. Every
community plan an institution writes therefore has the same rules: no links (except to the
institution's own sites), no phone numbers, no WeChat IDs, and no words from its own list.
These checks are pure functions of the text, so they can run on every post and be tested
on their own; what a group does with a finding (publish, hold, block) is decided elsewhere.

People who want to get around the rules write full-width digits and dots (１３８…, abc。com),
so the text is folded to plain ASCII first, one character for one, and every excerpt is
still cut from the text as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers

EXCERPT_LIMIT = 60


@dataclass(frozen=True)
class Finding:
    rule: str  # one of "link", "phone", "wechat", "keyword"
    excerpt: str  # the matched text as written, at most EXCERPT_LIMIT characters


# One character for one, so a position in the folded text is a position in the original:
# the full-width ASCII block, the ideographic space, and the middle dot people put between
# digit groups or labels instead of a dot.
_FOLD = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_FOLD.update({0x3000: ord(" "), 0x00B7: ord("."), 0x30FB: ord(".")})

# --- links -------------------------------------------------------------------------------

# Top-level domains people actually use in spam here. An explicit list, because a bare
# "word.word" is too often a sentence missing its space ("e.g.", "Mr.Li", "Node.js").
_TLDS = (
    "com|net|org|edu|gov|info|biz|cn|hk|tw|mo|jp|kr|sg|us|uk|io|me|co|cc|tv|ai|ly|gl|la|top|"
    "xyz|vip|club|site|online|shop|store|app|link|live|fun|work|wang|ltd|ink|pro|mobi|asia|"
    "ren|tech|cloud"
)
_DOT = r"[.。]"  # after folding; "。" is how a dot is slipped past a naive filter
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"{_LABEL}(?:{_DOT}{_LABEL})*"
_REST = r"(?:[/?#:][!-~]*)?"  # port, path and query: printable ASCII up to a space or CJK
_LINK = re.compile(
    # Never from the middle of a name: besides being wrong, retrying every label of a long
    # "a.b.c.d…" would take quadratic time.
    rf"(?<![A-Za-z0-9-])(?<![A-Za-z0-9-]{_DOT})(?:"
    rf"https?://(?:[-.~%!$&'()*+,;=:A-Za-z0-9_]+@)?(?P<url>{_HOST})"
    rf"|(?P<www>www{_DOT}{_HOST})"
    rf"|(?P<bare>(?:{_LABEL}{_DOT})+(?P<tld>{_TLDS}))"
    rf"(?![A-Za-z0-9-])"
    rf"){_REST}",
    re.IGNORECASE,
)
_TRAILING = ".,;:!?'\")]}>"  # sentence punctuation after a link is not part of it

# --- phone numbers -----------------------------------------------------------------------

# The shortest local landline number; anything shorter is a price, a score or an order.
_MIN_PHONE_DIGITS = 7
_DATE = re.compile(
    r"(?:19|20)\d\d[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])"
    r"|(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
    r"|(?:19|20)\d\d\s*[-~–—]\s*(?:19|20)\d\d"  # a school year, "2025-2026"
)
# A number right after a currency sign or "第", or right before a unit, counts something.
_BEFORE_AMOUNT = "¥￥$€£第"
_BEFORE_UNIT = "元块年月日分名人次个万%岁级班届期"

# --- WeChat IDs --------------------------------------------------------------------------

_WECHAT = re.compile(
    r"(?P<trigger>[微薇威v]信|加我?微"
    r"|(?<![a-z])(?:vx|wx|weixin|v[❤♥]\ufe0f?)(?![a-z]))"
    r"(?P<sep>[\s:是号码]{0,5})"
    r"(?P<id>[a-z][-_a-z0-9]{4,19}(?![-_a-z0-9])|\+?\d(?:[\s-]?\d){6,14}(?!\d))",
    re.IGNORECASE,
)
_ANNOUNCED = re.compile(r"[:是号码]")


def text_findings(
    text: str,
    *,
    region: str,
    allowed_domains: Iterable[str] = (),
    keywords: Iterable[str] = (),
) -> list[Finding]:
    """Every finding in the text, in order of position, at most one per distinct matched
    excerpt. `region` (ISO 3166 alpha-2) is how phone numbers without a country code are
    read; links to `allowed_domains` or their subdomains are allowed; `keywords` are matched
    case-insensitively, latin ones as whole words and Chinese ones as substrings."""
    folded = text.translate(_FOLD)
    spans = [
        *_links(folded, _domains(allowed_domains)),
        *_phones(folded, region),
        *_wechat_ids(folded),
        *_keywords(folded, keywords),
    ]
    spans.sort(key=lambda span: (span[0], -span[1], _RULE_ORDER.index(span[2])))
    findings: list[Finding] = []
    seen: set[str] = set()
    for start, end, rule in spans:
        excerpt = text[start:end][:EXCERPT_LIMIT]
        if excerpt not in seen:
            seen.add(excerpt)
            findings.append(Finding(rule, excerpt))
    return findings


_RULE_ORDER = ("link", "phone", "wechat", "keyword")
_Span = tuple[int, int, str]


def _domains(allowed: Iterable[str]) -> tuple[str, ...]:
    return tuple(
        d.strip().lower().lstrip(".") for d in (allowed or ()) if d and d.strip().strip(".")
    )


def _links(folded: str, allowed: tuple[str, ...]) -> Iterable[_Span]:
    pos = 0
    while match := _LINK.search(folded, pos):
        pos = match.end()
        tld = match["tld"]
        # "Done.Me too" and "homework.Work" are sentences missing a space, not domains.
        if tld and tld[0].isupper() and tld[1:].islower():
            continue
        host_group = next(name for name in ("url", "www", "bare") if match[name])
        host = match[host_group].replace("。", ".").lower()
        if any(host == d or host.endswith("." + d) for d in allowed):
            # An allowed site's path may still carry another link ("?u=t.cn/x"): read on.
            pos = match.end(host_group)
            continue
        end = match.end()
        while end > match.start() and folded[end - 1] in _TRAILING:
            end -= 1
        yield match.start(), end, "link"


def _phones(folded: str, region: str) -> Iterable[_Span]:
    matcher = phonenumbers.PhoneNumberMatcher(
        folded, region, leniency=phonenumbers.Leniency.POSSIBLE
    )
    for match in matcher:
        raw = match.raw_string
        if sum(c.isdigit() for c in raw) < _MIN_PHONE_DIGITS or _DATE.fullmatch(raw):
            continue
        before = folded[match.start - 1 : match.start].strip()
        after = folded[match.end : match.end + 1]
        if (before and before in _BEFORE_AMOUNT) or (after and after in _BEFORE_UNIT):
            continue
        yield match.start, match.end, "phone"


def _wechat_ids(folded: str) -> Iterable[_Span]:
    for match in _WECHAT.finditer(folded):
        wechat_id = match["id"]
        # "微信 group" is a sentence; an ID announced without ":"/"号"/"是" must look like one.
        if not _ANNOUNCED.search(match["sep"]) and not re.search(r"[\d_-]", wechat_id):
            continue
        yield match.start(), match.end(), "wechat"


def _keywords(folded: str, keywords: Iterable[str]) -> Iterable[_Span]:
    for keyword in keywords or ():
        word = (keyword or "").strip().translate(_FOLD)
        if not word:
            continue
        # Latin words are whole words ("ad" is not in "add"); Chinese has no spaces to check.
        left = r"(?<![A-Za-z0-9])" if word[0].isascii() and word[0].isalnum() else ""
        right = r"(?![A-Za-z0-9])" if word[-1].isascii() and word[-1].isalnum() else ""
        for match in re.finditer(left + re.escape(word) + right, folded, re.IGNORECASE):
            yield match.start(), match.end(), "keyword"
