"""The data path's processes: the ingest gateway and the stream consumers (archiving, alerting).

Consumers are small and alike: a poll loop at the edge, plain typed functions inside.
"""
