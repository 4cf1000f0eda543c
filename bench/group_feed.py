"""An open group: --readers members whose open pages ask for updates every few seconds,
while --posters members post. Update checks per second and their latency, beside the
hello-world Flask app on the same server settings.

Starts Cohort under gunicorn against a throwaway PostgreSQL database holding a school
(with --scale units of data, bench/data.py, and --others other schools) and a group with
--readers + --posters members, each signed in through the link of their own page as a
parent is. Then, from --connections connections:

1. *unchanged*: every reader asks with the feed's current version (If-None-Match) for
   --seconds, nothing being posted. Each answer must be a 304; the database transactions
   the server began over the phase are counted (a statement runs in a transaction, so 0
   transactions is 0 statements).
2. *while posting*: the readers ask as before, taking each new version and the posts after
   the newest they have (bench/wrk.lua's cycle), while --posters members each post a
   message every --post-every seconds for --seconds (having opened the group page for its
   CSRF token, as the browser does).

Prints one table (checks per second, latency percentiles, ratio to hello-world, statuses),
posts per second, database transactions per unchanged check, and the posts the readers
were sent against those written.

    python bench/group_feed.py --readers 500 --posters 20 --post-every 2 --connections 32

It needs PostgreSQL, Redis and wrk (the database named by --database is dropped and
recreated).
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from data import load
from harness import (
    SECRET_KEY,
    STATISTICS_DELAY,
    Prepared,
    argument_parser,
    cohort_server,
    count_rows,
    fresh_app,
    hello_world,
    poll_gets,
    print_table,
    settings_line,
    transactions,
)

POSTS = "SELECT count(*) FROM group_posts WHERE status = 'published'"


def prepare(args):
    """The school, its group and members; returns (group path, [each member's own-page
    link path])."""
    from app.contacts.models import SourceKind
    from app.contacts.services import (
        ContactDetails,
        StudentDetails,
        Touch,
        find_or_create_contact,
        parent_page_url,
    )
    from app.extensions import db
    from app.groups import services as groups
    from app.tenancy import bound
    from tests.factories import make_institution

    app = fresh_app(args.database, args.redis, SECRET_KEY=SECRET_KEY)
    with app.app_context():
        institution = make_institution(slug="bench-school")
        load(args, institution)
        with bound(institution):
            group = groups.create_group(
                institution, title="三年级数学家长群", rules="友善交流", flood_posts=1000
            )
            links = []
            for n in range(args.readers + args.posters):
                contact, _ = find_or_create_contact(
                    institution,
                    phone=f"1370000{n:04d}",
                    details=ContactDetails(f"家长{n}", students=[StudentDetails(f"孩子{n}")]),
                    touch=Touch(SourceKind.STAFF),
                )
                groups.add_member(institution, group, contact)
                links.append(urlsplit(parent_page_url(institution, contact)).path)
            db.session.commit()
            path = f"/{institution.slug}/g/{group.code}"
    return path, links


def sign_in(base: str, links: list[str]):
    """A browser per member, signed in through their own page's link (untimed)."""
    from app.devtools.stack import Visitor

    def one(link: str) -> Visitor:
        visitor = Visitor(base)
        status, _ = visitor.get(link)
        if status != 302:
            raise SystemExit(f"signing in through {link} answered {status}")
        return visitor

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, links))


def post_for(visitors, path: str, seconds: float, every: float) -> tuple[int, int]:
    """Each visitor posts a message every `every` seconds for `seconds`, from the group
    page it opened once (its CSRF token); the redirect back to the page is not followed.
    Returns (posted, refused)."""
    deadline = time.monotonic() + seconds
    counts = {"posted": 0, "refused": 0}
    lock = threading.Lock()

    def run(n: int, visitor) -> None:
        token = visitor.form_token(visitor.get(path)[1])
        time.sleep(every * n / len(visitors))  # spread out, as people are
        i = 0
        while time.monotonic() < deadline:
            started = time.monotonic()
            fields = {"csrf_token": token, "body": f"第{i}个问题：孩子今天的作业第{n}题怎么做？"}
            status, _body, location = visitor.post(f"{path}/posts", fields)
            published = status == 302 and "#post-" in (location or "")
            with lock:
                counts["posted" if published else "refused"] += 1
            i += 1
            time.sleep(max(0.0, every - (time.monotonic() - started)))

    threads = [threading.Thread(target=run, args=(n, v)) for n, v in enumerate(visitors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts["posted"], counts["refused"]


def main() -> None:
    parser = argument_parser(__doc__, connections=32)
    parser.add_argument("--readers", type=int, default=500)
    parser.add_argument("--posters", type=int, default=20)
    parser.add_argument(
        "--post-every", type=float, default=2.0, help="seconds between one poster's posts"
    )
    args = parser.parse_args()
    path, links = prepare(args)
    hello = hello_world(args)

    with cohort_server(args) as server:
        visitors = sign_in(server.base, links)
        readers, posters = visitors[: args.readers], visitors[args.readers :]
        status, _ = readers[0].get(path)  # warms the institution's copy in Redis
        if status != 200:
            raise SystemExit(f"the group page answered {status}")
        gets = [Prepared(f"{path}/updates", v.cookie_header(), "") for v in readers]
        etag = '"0"'  # nothing posted yet
        time.sleep(STATISTICS_DELAY)

        before = transactions(args.database)
        unchanged = poll_gets(server.base, gets, args.connections, args.seconds, etag)
        time.sleep(STATISTICS_DELAY)
        begun = transactions(args.database) - before

        result: dict = {}
        writer = threading.Thread(
            target=lambda: result.update(
                posts=post_for(posters, path, args.seconds, args.post_every)
            )
        )
        writer.start()
        posting = poll_gets(server.base, gets, args.connections, args.seconds, etag)
        writer.join()
        memory = server.memory_mib()
    posted, refused = result["posts"]
    published = count_rows(args.database, {"p": POSTS})["p"]

    print(f"group feed: {args.readers} members' pages asking for updates, {args.posters} posting")
    print(settings_line(args))
    print_table(
        "",
        [("update check, unchanged", unchanged), ("update check, while posting", posting)],
        hello,
        "req",
    )
    print(
        f"posts while checking                {posted / args.seconds:.1f}/s "
        f"({posted} posted, {refused} refused)"
    )
    print(
        f"database transactions in the unchanged phase: {begun} for "
        f"{unchanged.requests} checks ({begun / max(unchanged.requests, 1):.4f} a check;"
        " a statement needs one, so this is the statements' bound)"
    )
    print(f"posts published: {published} (posted: {posted})")
    print(f"{args.server} worker memory: {', '.join(f'{m:.0f} MiB' for m in memory)}")
    ok = (
        set(unchanged.statuses) == {304}
        and begun == 0
        and published == posted
        and not refused
        and set(posting.statuses) <= {200, 304}
    )
    print("correct" if ok else "NOT CORRECT")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
