"""The text rules every community post goes through: no links, no phone numbers, no WeChat
IDs, no listed words; and ordinary posts from parents and teachers pass untouched."""

from __future__ import annotations

import pytest

from app.groups.moderation import Finding, text_findings

SCHOOL = "example.edu.cn"


def findings(text: str, **options) -> list[tuple[str, str]]:
    options.setdefault("region", "CN")
    return [(f.rule, f.excerpt) for f in text_findings(text, **options)]


@pytest.mark.parametrize(
    "text",
    [
        "老师好，孩子今天的作业第3题不会做，能讲一下吗？",
        "Thanks! See you at 19:00 on 12月3日, lesson 2 costs ¥99.",
        "期末考试考了98分，谢谢老师！",
        "I read 3.5 chapters, e.g. chapter 2.",
        "我在微信群里看到了通知",
        "Mr.Li said the homework is due on Friday, i.e. in 3 days.",
        "课程价格¥199，团购99元，2026年春季开课。",
        "上课时间 10:00-12:00，三年级2班，共 30 人。",
        "2025-2026学年第一学期，2026.3.12 开学，2026-03-12 报到。",
        "孩子数学 95/100，语文 98.5 分，排名第12345名是笔误。",
        "We use Node.js and index.html in the coding class.",
        "I finished my homework.Work is hard but fun.",
        "微信 group 里讨论一下作业吧",
        "价格区间 1000-2000元，学费￥1999 一学期。",
        "",
    ],
)
def test_ordinary_posts_have_no_findings(text):
    assert findings(text) == []


def test_finding_is_a_frozen_rule_and_excerpt():
    (finding,) = text_findings("call 13800138000", region="CN")
    assert finding == Finding(rule="phone", excerpt="13800138000")
    with pytest.raises(AttributeError):
        finding.rule = "link"  # type: ignore[misc]


# --- links -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "excerpt"),
    [
        ("资料在 http://abc.com/x?y=1 下载", "http://abc.com/x?y=1"),
        ("see https://shop.example.org/item/42.", "https://shop.example.org/item/42"),
        ("访问www.abc.net了解更多", "www.abc.net"),
        ("abc.com", "abc.com"),
        ("去 foo.cn/x 看看", "foo.cn/x"),
        ("点这里t.cn/abc", "t.cn/abc"),
        ("ABC.COM 全场五折", "ABC.COM"),
        ("163.com邮箱", "163.com"),
        ("more at my.site.io, thanks", "my.site.io"),
        ("go to abc.xyz:8080/path!", "abc.xyz:8080/path"),
        ("看这个...abc.com", "abc.com"),
        ("写信到 lily@abc.com", "abc.com"),  # an e-mail address is a way off the platform too
    ],
)
def test_links_are_found(text, excerpt):
    assert findings(text) == [("link", excerpt)]


@pytest.mark.parametrize(
    ("text", "excerpt"),
    [
        ("abc。com", "abc。com"),
        ("加我看abc．cn/x", "abc．cn/x"),
        ("ｗｗｗ．ａｂｃ．ｃｏｍ", "ｗｗｗ．ａｂｃ．ｃｏｍ"),
        ("WWW。abc。top", "WWW。abc。top"),
    ],
)
def test_links_with_full_width_dots_are_found(text, excerpt):
    assert findings(text) == [("link", excerpt)]


def test_a_long_run_of_dotted_words_is_not_a_link():
    assert findings("a." * 5000) == []


@pytest.mark.parametrize(
    "text",
    [
        "通知见 https://www.example.edu.cn/news/1",
        "官网 example.edu.cn",
        "教务系统 jw.example.edu.cn/login",
        "http://EXAMPLE.EDU.CN",
        "写信到 li@example.edu.cn",
    ],
)
def test_links_to_allowed_domains_and_their_subdomains_pass(text):
    assert findings(text, allowed_domains=[SCHOOL]) == []


def test_an_allowed_domain_is_not_a_prefix_match():
    text = "看 example.edu.cn.evil.com 和 badexample.edu.cn"
    assert findings(text, allowed_domains=[SCHOOL]) == [
        ("link", "example.edu.cn.evil.com"),
        ("link", "badexample.edu.cn"),
    ]


def test_a_link_hidden_in_an_allowed_links_path_is_found():
    text = "https://example.edu.cn/go?u=t.cn/x"
    assert findings(text, allowed_domains=[SCHOOL]) == [("link", "t.cn/x")]


def test_allowed_domains_are_read_leniently():
    assert findings("官网 example.edu.cn", allowed_domains=[" Example.EDU.cn ", ""]) == []


def test_userinfo_does_not_hide_the_host():
    assert findings("http://example.edu.cn@evil.com/x", allowed_domains=[SCHOOL]) == [
        ("link", "http://example.edu.cn@evil.com/x")
    ]


# --- phone numbers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "138 0013 8000",
        "13800138000",
        "+86 139-0013-9000",
        "(010) 6552 9988",
        "138-0013-8000",
        "400-820-8820",
    ],
)
def test_phone_numbers_are_found(number):
    assert findings(f"有问题打 {number} 找我") == [("phone", number)]


@pytest.mark.parametrize(
    "number",
    [
        "１３８ ００１３ ８０００",
        "１３８００１３８０００",
        "（０１０）６５５２\u3000９９８８",
        "138－0013－8000",
        "138\u30000013\u30008000",
        "138·0013·8000",
    ],
)
def test_phone_numbers_in_full_width_or_chinese_separators_are_found(number):
    assert findings(f"电话{number}。") == [("phone", number)]


def test_phone_numbers_are_read_in_the_institutions_region():
    assert findings("call (415) 555-0132 today", region="US") == [("phone", "(415) 555-0132")]


# --- WeChat IDs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "excerpt"),
    [
        ("加我VX: abc_123", "VX: abc_123"),
        ("微信号：lily_teacher88", "微信号：lily_teacher88"),
        ("wx abc123456", "wx abc123456"),
        ("有需要加微 abc12345", "加微 abc12345"),
        ("V信 abc-12345", "V信 abc-12345"),
        ("vx:lilyteacher", "vx:lilyteacher"),
        ("我的微信是lilyteacher", "微信是lilyteacher"),
        ("weixin: hello_world", "weixin: hello_world"),
        ("薇信 abc_def", "薇信 abc_def"),
        ("威信：abcdef", "威信：abcdef"),
        ("v❤ abc_123", "v❤ abc_123"),
        ("v❤️ abc_123", "v❤️ abc_123"),
        ("WX：ｌｉｌｙ＿８８", "WX：ｌｉｌｙ＿８８"),
    ],
)
def test_wechat_ids_are_found(text, excerpt):
    assert findings(text) == [("wechat", excerpt)]


def test_a_wechat_id_that_is_a_phone_number_is_both():
    assert findings("VX：138 0013 8000") == [
        ("wechat", "VX：138 0013 8000"),
        ("phone", "138 0013 8000"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "我在微信群里看到了通知",
        "微信里说吧",
        "微信 group 里讨论",
        "wx is short for weixin",
        "加微信好友了吗？",
        "微信号：ab1",  # too short to be an ID
        "wx 123456",  # a score or an order number, not a phone
        "the wxyz123 sample",  # "wx" inside a word
    ],
)
def test_mentions_of_wechat_without_an_id_are_not_findings(text):
    assert findings(text) == []


# --- keywords ----------------------------------------------------------------------------


def test_keywords_are_found_case_insensitively_as_written():
    assert findings("Free gift! 代写作业，FREE 试听", keywords=["free", "代写"]) == [
        ("keyword", "Free"),
        ("keyword", "代写"),
        ("keyword", "FREE"),
    ]


def test_latin_keywords_are_whole_words_and_chinese_ones_substrings():
    text = "Please add the freedom essay; 小学代写作文"
    assert findings(text, keywords=["ad", "free", "代写"]) == [("keyword", "代写")]


def test_keyword_phrases_and_empty_keywords():
    text = "限时 Best Price 优惠"
    assert findings(text, keywords=["", "  ", "best price"]) == [("keyword", "Best Price")]


def test_keywords_in_full_width_letters_are_found():
    assert findings("ＦＲＥＥ 领取", keywords=["free"]) == [("keyword", "ＦＲＥＥ")]


# --- several findings --------------------------------------------------------------------


def test_several_findings_come_in_order_of_position():
    text = "代写作业加我微信lily_88，电话13800138000，网址abc.com，官网example.edu.cn"
    assert findings(text, allowed_domains=[SCHOOL], keywords=["代写"]) == [
        ("keyword", "代写"),
        ("wechat", "微信lily_88"),
        ("phone", "13800138000"),
        ("link", "abc.com"),
    ]


def test_a_repeated_excerpt_is_reported_once():
    text = "abc.com 13800138000 abc.com 13800138000 abc。com"
    assert findings(text) == [
        ("link", "abc.com"),
        ("phone", "13800138000"),
        ("link", "abc。com"),
    ]


def test_excerpts_are_at_most_60_characters():
    url = "https://abc.com/" + "x" * 100
    ((rule, excerpt),) = findings(f"看 {url} 吧")
    assert rule == "link"
    assert excerpt == url[:60]


def test_iterables_are_accepted_for_domains_and_keywords():
    text = "官网 example.edu.cn，代写"
    assert findings(text, allowed_domains=iter([SCHOOL]), keywords=(k for k in ["代写"])) == [
        ("keyword", "代写")
    ]
