"""The lake consumer: every report, alert event and lifecycle transition of one force, as
Parquet in the analytics lake, exactly once (``peaceland.analytics.lake``)."""
