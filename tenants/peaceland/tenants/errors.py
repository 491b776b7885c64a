"""Errors of the domain.

    PeaceLandError
    ├── InvalidRecordError     a report or alert that breaks the data contract
    ├── InvalidForceIdError    a police force identifier we cannot name resources after
    └── ProvisioningError      what a force's spec asks cannot be done on these servers now

Components translate these at their edges only: an HTTP 4xx in the API and the gateway,
the dead-letter topic in consumers, a permanent error in the operator.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError


class PeaceLandError(Exception):
    """Base of every error raised by PeaceLand code."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One broken rule: the field, as a dotted path (``citizens.3.score``), and why."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class InvalidRecordError(PeaceLandError, ValueError):
    """A record that breaks the data contract. Names every field at fault and the reason."""

    def __init__(self, kind: str, errors: list[FieldError]) -> None:
        self.kind = kind
        self.errors = errors
        super().__init__(f"invalid {kind}: " + "; ".join(str(e) for e in errors))

    @classmethod
    def from_validation(cls, kind: str, exc: ValidationError) -> InvalidRecordError:
        """The error of a ``kind`` record pydantic refused: each field at fault, and why."""
        errors = [
            FieldError(".".join(str(p) for p in e["loc"]) or f"({kind})", e["msg"])
            for e in exc.errors(include_url=False, include_input=False)
        ]
        return cls(kind, errors)

    @property
    def reason(self) -> str:
        """A one-line reason fit for a log line, an HTTP body or a dead-letter header."""
        return str(self)


class InvalidForceIdError(PeaceLandError, ValueError):
    """A police force identifier that cannot name Kafka topics and a Cassandra keyspace."""


class ProvisioningError(PeaceLandError):
    """A force's resources cannot be made as its spec asks on the servers as they are now
    (more Kafka copies than brokers, a data centre Cassandra does not know). Not a server
    outage: retrying soon will not help, a change of spec or of the cluster will."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class NameTakenError(ProvisioningError):
    """A police force id another PoliceForce holds. The message goes to the refused tenant
    (its status, its Events): it says the id is taken and nothing of whom by; ``holder``
    (``namespace/name``) is for the platform's own logs."""

    def __init__(self, force_id: str, holder: str) -> None:
        super().__init__(
            "NameTaken",
            f"the police force id {force_id!r} is taken by another police force: its topics "
            "and keyspace are that force's. Choose another name.",
        )
        self.holder = holder
