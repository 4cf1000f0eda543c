"""Start a Cohort background process inside an app context.

python worker.py                 an RQ worker on every queue (run as many as needed)
python worker.py --queues payments
python worker.py --deliver       a deliverer of the outbox (e-mail, SMS, in-app; one or more)
python worker.py --scheduler     the scheduler: delayed jobs and periodic jobs (one, or
                                 more as stand-bys: only the holder of its lock schedules)
"""

from __future__ import annotations

import argparse

from app import create_app
from app.jobs import QUEUES, run_scheduler, run_worker


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scheduler", action="store_true", help="run the scheduler instead of a worker"
    )
    parser.add_argument(
        "--deliver", action="store_true", help="deliver the outbox instead of running jobs"
    )
    parser.add_argument(
        "--queues",
        nargs="+",
        choices=QUEUES,
        default=list(QUEUES),
        help="queues to work on, highest priority first",
    )
    parser.add_argument(
        "--burst", action="store_true", help="work until the queues are empty, then exit"
    )
    args = parser.parse_args()
    app = create_app()
    if args.scheduler:
        run_scheduler(app)
    elif args.deliver:
        from app.notifications.tasks import run_deliverer

        run_deliverer(app)
    else:
        run_worker(app, tuple(args.queues), burst=args.burst)


if __name__ == "__main__":
    main()
