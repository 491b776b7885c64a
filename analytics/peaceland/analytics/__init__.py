"""Analytics over every stored report: the columnar lake and the questions asked of it.

The lake is Parquet (zstd) under a lake URI, one directory per police force, one per table,
partitioned by date and hour (``peaceland.analytics.lake``); the lake consumer fills it
exactly once per record. Its queries run on DuckDB over the force's own files
(``peaceland.analytics.stats``). This package imports only the tenants domain: the lake
consumer, the control plane and the CLI build on it.
"""
