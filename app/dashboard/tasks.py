"""The dashboard has no jobs: its figures are read when a page is asked for (see
app.dashboard.models for why there are no rollup tables to keep)."""
