"""The control plane's schema, one Alembic revision per change (``versions/``)."""
