"""The operator's tests use the shared fixtures of ``tests/conftest.py``: a real API server,
the chart's CRDs and RBAC, a namespace of each test's own and an operator process serving it,
logged in as the chart's ServiceAccount (a missing right fails these tests)."""
