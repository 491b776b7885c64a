"""The PeaceLand domain, shared by every component.

What a drone report and an alert are (and their versioned JSON wire format), how a police
force is named and where its data lives (topics, keyspace), and the idempotent provisioning
of those resources. This package imports nothing else of ours: the operator, the services
and the API all build on it.
"""
