"""PostgreSQL: the schema, the stores and the status-change listener."""
