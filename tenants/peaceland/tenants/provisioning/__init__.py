"""Idempotent provisioning of a police force's resources: its Kafka topics and its keyspace.

Every function here may run any number of times, concurrently from several processes, and
converges to the same state: the operator calls them on every reconcile, tests and the CLI
call them directly.
"""
