"""A force's identities on the servers: its Kafka principals with their ACLs, its Cassandra
role with its grants, and the Secret that hands them to the force's processes.

Each process of a force signs in as the force's own principal for its role:

- ``<force>.gateway.g<N>`` writes the force's reports topic, nothing else;
- ``<force>.archiver.g<N>`` reads the reports topic in the archiver's group, writes the
  dead-letter topic;
- ``<force>.alerter.g<N>`` reads the reports topic in the alerter's group, writes the alerts
  and dead-letter topics, in transactions whose ids start with the alerter's group;
- ``<force>.dashboard.g<N>`` (the control plane, serving the force's officers) reads the
  reports topic (drones' positions), the alerts and lifecycle topics, and writes the
  lifecycle topic; its group names start with the dashboard's (it commits nothing);
- the Cassandra role ``pf_<force>_g<N>`` reads and writes the force's keyspace only;
- on a lake in an object store, the store's users ``<force>.lake.g<N>.<lake>`` (the lake
  consumer) and ``<force>.read.g<N>.<lake>`` (the control plane) reach the force's folder of
  the lake only (``peaceland.tenants.provisioning.lake_identities``).

The brokers deny whatever no ACL allows (StandardAuthorizer, no ACL means no access), and
Cassandra whatever no grant allows: a process of one force cannot read, write or describe
another force's topics, groups, transactions or keyspace, whatever its code asks.

``N`` is the credentials' generation. A rotation makes generation N+1 beside N (both valid),
hands it to the processes, and retires N once every process runs on N+1: the old principal's
password and ACLs and the old role are then gone, refused by the servers.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from cassandra import InvalidRequest
from cassandra.cluster import Session
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
)
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from confluent_kafka.admin._scram import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from peaceland.tenants.forces import ForceResources, consumer_group, resources_for
from peaceland.tenants.provisioning.lake_identities import LAKE_ROLES, S3Key

#: The roles a force's processes play, each its own Kafka principal.
ROLES: Final = ("gateway", "archiver", "alerter", "lake", "dashboard")
#: The roles of the force's consumer pods: what rolls them when a password changes.
_CONSUMER_ROLES: Final = ("gateway", "archiver", "alerter", "lake")
#: SCRAM's iteration count: the broker's default minimum is 4096.
SCRAM_ITERATIONS: Final = 8192


@dataclass(frozen=True, slots=True)
class Identity:
    """One principal's name and password."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ForceCredentials:
    """Every identity of one force at one generation."""

    force_id: str
    generation: int
    kafka: Mapping[str, Identity]
    cassandra: Identity
    #: The keys of the lake's object store, by role (``LAKE_ROLES``); empty when the lake is
    #: on no object store, or before the store's users are made.
    s3: Mapping[str, S3Key] = field(default_factory=dict)

    @classmethod
    def generate(cls, force_id: str, generation: int) -> ForceCredentials:
        """New identities with new random passwords (256 bits each)."""
        return cls(
            force_id,
            generation,
            {
                role: Identity(kafka_principal(force_id, role, generation), _password())
                for role in ROLES
            },
            Identity(cassandra_role(force_id, generation), _password()),
        )

    @property
    def version(self) -> str:
        """The generation and a digest of the consumers' passwords: what their pod template
        carries, so that any change of one (not only a rotation) rolls them, and nothing
        else does (the dashboard's identity is the control plane's)."""
        used = {
            k: v
            for k, v in self.secret_data().items()
            if k.split(".")[0] in _CONSUMER_ROLES or k.startswith("cassandra-") or k == "generation"
        }
        digest = hashlib.sha256(
            "\n".join(f"{k}={v}" for k, v in sorted(used.items())).encode()
        ).hexdigest()
        return f"{self.generation}.{digest[:16]}"

    @property
    def fingerprint(self) -> str:
        """A digest of every identity: two readings of the Secret that differ in any."""
        return hashlib.sha256(
            "\n".join(f"{k}={v}" for k, v in sorted(self.secret_data().items())).encode()
        ).hexdigest()

    def secret_data(self) -> dict[str, str]:
        """The force's Secret: ``<role>.kafka-username``, ``<role>.kafka-password`` for each
        role, ``cassandra-username``, ``cassandra-password`` and ``generation``; and, for a lake in
        an object store, ``<role>.s3-access-key-id`` and ``<role>.s3-secret-access-key``."""
        data = {"generation": str(self.generation)}
        for role, identity in self.kafka.items():
            data[f"{role}.kafka-username"] = identity.username
            data[f"{role}.kafka-password"] = identity.password
        data["cassandra-username"] = self.cassandra.username
        data["cassandra-password"] = self.cassandra.password
        for role, key in self.s3.items():
            data[f"{role}.s3-access-key-id"] = key.access_key_id
            data[f"{role}.s3-secret-access-key"] = key.secret_access_key
        return data

    @classmethod
    def from_secret_data(
        cls, force_id: str, data: Mapping[str, str], *, fill_missing: bool = True
    ) -> ForceCredentials | None:
        """The credentials a Secret holds; None when it holds no whole, valid set (then new
        ones are made: a half-written or hand-edited Secret is replaced, never trusted).

        A role the Secret has no entry at all for (a role added since the Secret was made)
        is given a new identity of the Secret's generation, so that the others keep theirs:
        an upgrade adds a principal without changing a running process's password. A reader
        of the Secret (``fill_missing=False``) gets None instead: an invented password is
        one the servers do not know."""
        if not fill_missing and any(f"{role}.kafka-username" not in data for role in ROLES):
            return None
        try:
            generation = int(data["generation"])
            kafka = {
                role: Identity(data[f"{role}.kafka-username"], data[f"{role}.kafka-password"])
                if f"{role}.kafka-username" in data or f"{role}.kafka-password" in data
                else Identity(kafka_principal(force_id, role, generation), _password())
                for role in ROLES
            }
            cassandra = Identity(data["cassandra-username"], data["cassandra-password"])
            s3 = {
                role: S3Key(data[f"{role}.s3-access-key-id"], data[f"{role}.s3-secret-access-key"])
                for role in LAKE_ROLES
                if f"{role}.s3-access-key-id" in data or f"{role}.s3-secret-access-key" in data
            }
        except (KeyError, ValueError):
            return None
        names_match = all(
            kafka[role].username == kafka_principal(force_id, role, generation) for role in ROLES
        ) and (cassandra.username == cassandra_role(force_id, generation))
        passwords = [i.password for i in kafka.values()] + [cassandra.password]
        if not names_match or not all(len(p) >= 32 for p in passwords):
            return None
        if not all(k.access_key_id and k.secret_access_key for k in s3.values()):
            return None
        return cls(force_id, generation, kafka, cassandra, s3)


def _password() -> str:
    return secrets.token_urlsafe(32)


def secret_name(force_id: str) -> str:
    """The Secret, in the force's namespace, that holds its credentials."""
    return f"{force_id}-credentials"


def kafka_principal(force_id: str, role: str, generation: int) -> str:
    if role not in ROLES:
        raise ValueError(f"no role called {role!r}; there are {ROLES}")
    return f"{resources_for(force_id).force_id}.{role}.g{generation}"


def cassandra_role(force_id: str, generation: int) -> str:
    return f"{resources_for(force_id).keyspace}_g{generation}"


def transactional_id_prefix(force_id: str) -> str:
    """Every transactional id of the force's alerter starts with this (its group, a dot)."""
    return consumer_group(force_id, "alerter") + "."


# --------------------------------------------------------------------------- Kafka


def acl_bindings(resources: ForceResources, role: str, principal: str) -> list[AclBinding]:
    """What ``principal``, playing ``role`` for the force, may do: nothing more."""
    user = f"User:{principal}"
    topic, group, txn = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID
    literal, prefixed = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    read, write = AclOperation.READ, AclOperation.WRITE
    describe = AclOperation.DESCRIBE
    grants: list[tuple[ResourceType, str, ResourcePatternType, AclOperation]] = []
    if role == "gateway":
        grants += [(topic, resources.reports_topic, literal, op) for op in (write, describe)]
    elif role == "dashboard":
        readable = (resources.reports_topic, resources.alerts_topic, resources.lifecycle_topic)
        grants += [(topic, name, literal, op) for name in readable for op in (read, describe)]
        grants += [(topic, resources.lifecycle_topic, literal, write)]
        group_prefix = consumer_group(resources.force_id, role)
        grants += [(group, group_prefix, prefixed, op) for op in (read, describe)]
    elif role == "lake":
        readable = (resources.reports_topic, resources.alerts_topic, resources.lifecycle_topic)
        grants += [(topic, name, literal, op) for name in readable for op in (read, describe)]
        group_id = consumer_group(resources.force_id, role)
        grants += [(group, group_id, literal, op) for op in (read, describe)]
    else:
        group_id = consumer_group(resources.force_id, role)
        grants += [(topic, resources.reports_topic, literal, op) for op in (read, describe)]
        grants += [(group, group_id, literal, op) for op in (read, describe)]
        grants += [(topic, resources.dead_letter_topic, literal, op) for op in (write, describe)]
    if role == "alerter":
        prefix = transactional_id_prefix(resources.force_id)
        grants += [(topic, resources.alerts_topic, literal, op) for op in (write, describe)]
        grants += [(txn, prefix, prefixed, op) for op in (write, describe)]
    return [
        AclBinding(kind, name, pattern, user, "*", op, AclPermissionType.ALLOW)
        for kind, name, pattern, op in grants
    ]


def ensure_kafka_identities(
    admin: AdminClient,
    credentials: ForceCredentials,
    timeout: float = 30.0,
    *,
    set_passwords: bool = True,
) -> None:
    """Each role's SCRAM-SHA-512 credential and ACLs, as ``credentials`` says (idempotent:
    a missing principal or ACL is made again). ``set_passwords=False`` leaves the password
    of a principal that exists alone (no new salt in the metadata on every reconcile)."""
    resources = resources_for(credentials.force_id)
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    known = set() if set_passwords else _kafka_users(admin, timeout)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(identity.username, info, identity.password.encode())
        for identity in credentials.kafka.values()
        if identity.username not in known
    ]
    if upserts:
        for future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout).values():
            future.result()
    bindings = [
        binding
        for role, identity in credentials.kafka.items()
        for binding in acl_bindings(resources, role, identity.username)
    ]
    for future in admin.create_acls(bindings, request_timeout=timeout).values():
        future.result()


def _kafka_users(admin: AdminClient, timeout: float) -> set[str]:
    described = admin.describe_user_scram_credentials(request_timeout=timeout)
    assert not isinstance(described, dict)  # asked of every user: one future
    try:
        return set(described.result())
    except KafkaException as exc:
        if "RESOURCE_NOT_FOUND" in str(exc):
            return set()
        raise


def kafka_generations(admin: AdminClient, force_id: str, timeout: float = 30.0) -> set[int]:
    """The generations of the force's principals that Kafka knows."""
    pattern = re.compile(rf"^{re.escape(force_id)}\.(?:{'|'.join(ROLES)})\.g(\d+)$")
    users = _kafka_users(admin, timeout)
    return {int(m.group(1)) for user in users if (m := pattern.match(user))}


def remove_kafka_identities(
    admin: AdminClient, force_id: str, generation: int, timeout: float = 30.0
) -> None:
    """Retire one generation: its ACLs, then its passwords. A client still signed in as it
    is refused at its next request (no ACL); a new sign-in fails."""
    acls = [
        AclBindingFilter(
            ResourceType.ANY,
            None,  # type: ignore[arg-type]  # None matches any name
            ResourcePatternType.ANY,
            f"User:{kafka_principal(force_id, role, generation)}",
            None,  # type: ignore[arg-type]  # None matches any host
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        for role in ROLES
    ]
    for acl_future in admin.delete_acls(acls, request_timeout=timeout).values():
        acl_future.result()
    deletions: list[UserScramCredentialAlteration] = [
        UserScramCredentialDeletion(
            kafka_principal(force_id, role, generation), ScramMechanism.SCRAM_SHA_512
        )
        for role in ROLES
    ]
    for future in admin.alter_user_scram_credentials(deletions, request_timeout=timeout).values():
        try:
            future.result()
        except KafkaException as exc:
            if "RESOURCE_NOT_FOUND" not in str(exc):  # already gone: what we wanted
                raise


# --------------------------------------------------------------------------- Cassandra


def ensure_cassandra_role(
    session: Session, credentials: ForceCredentials, *, set_password: bool = True
) -> None:
    """The force's role, able to sign in, reading and writing its keyspace only (no schema
    change, no other keyspace: the operator migrates the schema as the administrator).
    Idempotent: a missing grant is made again."""
    identity, keyspace = credentials.cassandra, resources_for(credentials.force_id).keyspace
    exists = session.execute(
        "SELECT role FROM system_auth.roles WHERE role = %s", (identity.username,)
    ).one()
    created = False
    if exists is None:
        try:
            session.execute(
                f'CREATE ROLE "{identity.username}" WITH PASSWORD = %s AND LOGIN = true',
                (identity.password,),
            )
            created = True
        except InvalidRequest as exc:  # made meanwhile (by another reconcile): set it below
            if "already exists" not in str(exc):
                raise
    if set_password and not created:
        # New credentials for a role that exists (a Secret lost, a generation reused): the
        # role takes the password the Secret will hold. Only then: Cassandra lets a role's
        # password change once per 5 s at most, and hashes it with bcrypt.
        session.execute(
            f'ALTER ROLE "{identity.username}" WITH PASSWORD = %s AND LOGIN = true',
            (identity.password,),
        )
    for permission in ("SELECT", "MODIFY"):
        session.execute(f'GRANT {permission} ON KEYSPACE {keyspace} TO "{identity.username}"')


def cassandra_generations(session: Session, force_id: str) -> set[int]:
    """The generations of the force's roles that Cassandra knows."""
    pattern = re.compile(rf"^{re.escape(resources_for(force_id).keyspace)}_g(\d+)$")
    rows = session.execute("SELECT role FROM system_auth.roles")
    return {int(m.group(1)) for row in rows if (m := pattern.match(row.role))}


def remove_cassandra_role(session: Session, force_id: str, generation: int) -> None:
    session.execute(f'DROP ROLE IF EXISTS "{cassandra_role(force_id, generation)}"')


def retire_generations(
    admin: AdminClient,
    session: Session,
    force_id: str,
    keep: int | None,
    timeout: float = 30.0,
    before_kafka: Callable[[int], None] = lambda _generation: None,
) -> list[int]:
    """Remove every generation of the force's identities but ``keep`` (None: all of them,
    when the force is deleted); returns the generations removed. ``before_kafka(g)`` runs
    before generation ``g``'s principals go (what hangs on them, found by their name while
    they exist)."""
    kafka = kafka_generations(admin, force_id, timeout)
    cassandra = cassandra_generations(session, force_id)
    removed = sorted((kafka | cassandra) - ({keep} if keep is not None else set()))
    for generation in removed:
        if generation in kafka:
            before_kafka(generation)
            remove_kafka_identities(admin, force_id, generation, timeout)
        if generation in cassandra:
            remove_cassandra_role(session, force_id, generation)
    return removed


def ensure_identities(
    admin: AdminClient,
    session: Session,
    credentials: ForceCredentials,
    timeout: float = 30.0,
    *,
    set_passwords: bool = True,
) -> None:
    """Both servers' identities of the force, as ``credentials`` says; ``set_passwords``
    when the credentials are new (else existing principals keep their passwords)."""
    ensure_kafka_identities(admin, credentials, timeout, set_passwords=set_passwords)
    ensure_cassandra_role(session, credentials, set_password=set_passwords)
