"""Background jobs of this domain (none of its own: form views are written back by
app.counters, into services.add_views)."""
