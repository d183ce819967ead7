"""PostgreSQL: the schema and queries (``db``) and the embedded private cluster."""
