"""The archiving consumer: every report of a force, stored in its Cassandra keyspace.

At-least-once with idempotent writes: a batch is written, then its offsets committed; a
crash between the two replays the batch, which rewrites the same rows (the primary key holds
the report id, the write timestamp is the report's own time).
"""
