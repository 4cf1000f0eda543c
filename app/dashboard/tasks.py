"""The dashboard has no jobs: its figures are read when a page is asked for, and the one
rollup the funnel reads (contacts' FamilyProgress) is kept by the services that change a
family's stage, in their own transactions (see app.dashboard.models)."""
