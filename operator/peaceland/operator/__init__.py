"""The kopf operator that turns each PoliceForce resource into its topics, keyspace and consumers.

Its handlers are thin: they translate between Kubernetes and the idempotent provisioning in
``peaceland.tenants.provisioning``.
"""
