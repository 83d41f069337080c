"""The embedded sample data: a seeded generator of miniature dataset trees (see sample_data/README.md)."""
