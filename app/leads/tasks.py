"""Lead jobs: writing the public forms' view counts back from Redis."""

from __future__ import annotations

from app import counters
from app.jobs import job, periodic, platform_job, redrive
from app.leads import services


@job(queue="default", timeout=120)
def write_back_form_views(institution) -> int:
    """Add the institution's form views counted in Redis to its forms; returns how many
    forms had views. If the write fails, the counts go back to Redis for the next run."""
    counts = counters.take(services.VIEWS, institution.id)
    try:
        services.add_views(institution, counts)
    except Exception:
        counters.give_back(services.VIEWS, institution.id, counts)
        raise
    return len(counts)


@periodic("COUNTER_INTERVAL_SECONDS")
@platform_job(queue="default", timeout=120)
def sweep_form_views() -> int:
    """Enqueue the write-back of form views for every institution that has some."""
    return sum(
        redrive(write_back_form_views, institution_id, job_id=f"form-views-{institution_id}")
        for institution_id in counters.waiting(services.VIEWS)
    )
