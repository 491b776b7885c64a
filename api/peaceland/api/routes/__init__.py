"""The API's routes, one module per resource. Thin: check, call the core, answer.

No ``from __future__ import annotations`` in these modules: FastAPI reads the routes'
annotations at run time.
"""
