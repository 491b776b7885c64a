"""A force's identities on the lake's object store: the S3 server refuses a force's keys
anywhere but under its own folder of the lake.

Each force has two users on the store's IAM API, per credentials generation ``N``:

- ``<force>.lake.g<N>.<lake>``, its lake consumer: reads, writes and deletes objects under
  ``<bucket>/<prefix>/<force>/``, lists that folder and nothing else;
- ``<force>.read.g<N>.<lake>``, the control plane serving the force's people (its
  ``dashboard`` role): reads and lists the same folder, writes nothing.

``<lake>`` names the lake (a digest of its bucket and prefix): two lakes on one store (a
staging and a production platform) never take each other's users for their own.

Their policies name the folder as the resource (and, for listing, as the only prefix a
listing may ask for), so a key of force A asking for force B's files, or for the list of
forces, gets AccessDenied from the server, whatever our code asks.

Keys are made by the server (``CreateAccessKey``: the one way AWS IAM offers) and recorded in
the force's Secret by the operator. A user keeps only the one key its Secret records: any
other is deleted at the next reconcile (an attempt whose Secret was never written made it,
or the force itself: SeaweedFS lets any user manage its own keys, and its policy language
has no Deny to forbid it; AWS IAM grants a user nothing it was not given). A retired or
deleted user goes with every key it holds, whatever their names.

The IAM API is AWS's query API, spoken by boto3, AWS's own client. SeaweedFS, the stack's
S3 server, serves it on its S3 port; on AWS itself, the same calls go to IAM's endpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from peaceland.tenants.forces import validate_force_id

log = logging.getLogger(__name__)

#: The roles with an identity on the lake's store, and how their users' names say them (an
#: IAM user name is at most 64 characters).
LAKE_ROLES: Final = ("lake", "dashboard")
_TAGS: Final = {"lake": "lake", "dashboard": "read"}
#: The name of the one inline policy each user holds.
POLICY_NAME: Final = "peaceland-lake"
_WRITE: Final = ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")
_USER = re.compile(
    r"^(?P<force>[a-z0-9-]+)\.(?P<tag>[a-z]+)\.g(?P<generation>[0-9]+)\.(?P<lake>[0-9a-f]{6})$"
)


class LakeIdentityError(RuntimeError):
    """The store's IAM API refused or failed a request; the message says which and why."""


@dataclass(frozen=True, slots=True)
class S3Key:
    """An access key id and its secret."""

    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class LakeLocation:
    """Where the lake is on its store: a bucket, and a folder of it (``""``: its root)."""

    bucket: str
    prefix: str = ""

    @classmethod
    def from_uri(cls, uri: str) -> LakeLocation:
        """The location of an ``s3://bucket/prefix?...`` lake URI."""
        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://bucket/... lake URI: {parts.scheme}://{parts.netloc}")
        return cls(parts.netloc, parts.path.strip("/"))

    def folder(self, force_id: str) -> str:
        """The force's folder, as an object key prefix (no slash at either end)."""
        force = validate_force_id(force_id)
        return f"{self.prefix}/{force}" if self.prefix else force

    @property
    def lake_id(self) -> str:
        """What the lake's users' names end with: a digest of its bucket and prefix."""
        return hashlib.sha256(f"{self.bucket}/{self.prefix}".encode()).hexdigest()[:6]


def iam_endpoint_of(uri: str) -> str:
    """The IAM API of the store an ``s3://`` lake URI names (SeaweedFS serves it on its S3
    port): ``scheme://endpoint_override``."""
    options = dict(parse_qsl(urlsplit(uri).query))
    if "endpoint_override" not in options:
        raise ValueError("the lake's URI names no endpoint_override: give the IAM endpoint")
    return f"{options.get('scheme', 'https')}://{options['endpoint_override']}"


def s3_user(location: LakeLocation, force_id: str, role: str, generation: int) -> str:
    """The store's user of the force's ``role`` at ``generation``, for the lake at
    ``location``."""
    if role not in LAKE_ROLES:
        raise ValueError(f"no lake role called {role!r}; there are {LAKE_ROLES}")
    force = validate_force_id(force_id)
    return f"{force}.{_TAGS[role]}.g{generation}.{location.lake_id}"


def lake_policy(location: LakeLocation, force_id: str, role: str) -> dict[str, Any]:
    """What the force's ``role`` may do on the store: its folder, and nothing else."""
    if role not in LAKE_ROLES:
        raise ValueError(f"no lake role called {role!r}; there are {LAKE_ROLES}")
    folder = location.folder(force_id)
    bucket = f"arn:aws:s3:::{location.bucket}"
    objects = ["s3:GetObject", *(_WRITE if role == "lake" else ())]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": objects, "Resource": [f"{bucket}/{folder}/*"]},
            # Asking whether the folder exists reads it as an object first (pyarrow does).
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"{bucket}/{folder}"]},
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [bucket],
                "Condition": {"StringLike": {"s3:prefix": [f"{folder}/*"]}},
            },
        ],
    }


class LakeIdentities:
    """The forces' users on the lake's store, through its IAM API as its administrator."""

    def __init__(
        self,
        endpoint: str,
        admin: S3Key,
        location: LakeLocation,
        *,
        region: str = "us-east-1",
        timeout: float = 10.0,
    ) -> None:
        self.location = location
        self._iam = boto3.session.Session().client(
            "iam",
            endpoint_url=endpoint,
            aws_access_key_id=admin.access_key_id,
            aws_secret_access_key=admin.secret_access_key,
            region_name=region,
            config=Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": 2, "mode": "standard"},
                # A key the store took with a name AWS would refuse (SeaweedFS takes ids of
                # 4 characters) must still be deletable.
                parameter_validation=False,
            ),
        )

    def ensure(self, force_id: str, generation: int, held: Mapping[str, S3Key]) -> dict[str, S3Key]:
        """Both roles' users at ``generation``, with their policies, and one key each: the
        one ``held`` records when the server still has it, else a new one. Returns the keys
        to record."""
        keys: dict[str, S3Key] = {}
        for role in LAKE_ROLES:
            user = s3_user(self.location, force_id, role, generation)
            with _said(f"making the store's user {user}"):
                self._ensure_user(user, lake_policy(self.location, force_id, role))
                listed = self._key_ids(user)
                kept = held.get(role)
                if kept is None or kept.access_key_id not in listed:
                    kept = None
                unknown = [k for k in listed if kept is None or k != kept.access_key_id]
                if unknown and kept is not None:
                    log.warning(
                        "the store's user %s held %d key(s) its Secret does not record "
                        "(made by the force itself?): deleted",
                        user,
                        len(unknown),
                    )
                for key_id in unknown:
                    self._iam.delete_access_key(UserName=user, AccessKeyId=key_id)
                if kept is None:
                    made = self._iam.create_access_key(UserName=user)["AccessKey"]
                    kept = S3Key(made["AccessKeyId"], made["SecretAccessKey"])
            keys[role] = kept
        return keys

    def _ensure_user(self, user: str, policy: dict[str, Any]) -> None:
        """The user, with ``policy`` as its one policy; written only when not so already
        (a reconcile every half minute writes nothing)."""
        try:
            self._iam.get_user(UserName=user)
        except ClientError as exc:
            if _code(exc) != "NoSuchEntity":
                raise
            self._iam.create_user(UserName=user)
        try:
            held = self._iam.get_user_policy(UserName=user, PolicyName=POLICY_NAME)
            current = held["PolicyDocument"]
            if isinstance(current, str):
                current = json.loads(unquote(current))
        except ClientError as exc:
            if _code(exc) != "NoSuchEntity":
                raise
            current = None
        if current is None or _normal(current) != _normal(policy):
            self._iam.put_user_policy(
                UserName=user, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy)
            )

    def generations(self, force_id: str) -> set[int]:
        """The generations the force has users of on this lake's store."""
        force = validate_force_id(force_id)
        return {
            int(match["generation"])
            for name in self._users()
            if (match := _USER.match(name))
            and match["force"] == force
            and match["lake"] == self.location.lake_id
        }

    def forces(self) -> set[str]:
        """The forces with users on this lake's store (any generation)."""
        return {
            match["force"]
            for name in self._users()
            if (match := _USER.match(name)) and match["lake"] == self.location.lake_id
        }

    def retire(self, force_id: str, keep: int | None) -> list[int]:
        """Remove every generation of the force's users but ``keep`` (None: all, when the
        force is deleted): their keys, policies and the users themselves. Returns the
        generations removed."""
        removed = sorted(self.generations(force_id) - ({keep} if keep is not None else set()))
        for generation in removed:
            for role in LAKE_ROLES:
                self._remove(s3_user(self.location, force_id, role, generation))
        return removed

    def _remove(self, user: str) -> None:
        """The user gone with its keys and policy, whatever they are named (a key or a
        policy that cannot be deleted alone goes with the user: SeaweedFS deletes a user
        that still holds them)."""
        with _said(f"removing the store's user {user}"):
            try:
                for key_id in self._key_ids(user):
                    with contextlib.suppress(ClientError):
                        self._iam.delete_access_key(UserName=user, AccessKeyId=key_id)
                for name in self._iam.list_user_policies(UserName=user)["PolicyNames"]:
                    with contextlib.suppress(ClientError):
                        self._iam.delete_user_policy(UserName=user, PolicyName=name)
                self._iam.delete_user(UserName=user)
            except ClientError as exc:
                if _code(exc) != "NoSuchEntity":
                    raise

    def _key_ids(self, user: str) -> list[str]:
        listed = self._iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        return [str(key["AccessKeyId"]) for key in listed]

    def _users(self) -> Iterator[str]:
        with _said("listing the store's users"):
            for page in self._iam.get_paginator("list_users").paginate():
                for user in page["Users"]:
                    yield str(user["UserName"])


def _normal(policy: Any) -> Any:
    """A policy as compared: a list of one value is that value (AWS and SeaweedFS give back
    ``"Action": "s3:GetObject"`` for ``["s3:GetObject"]``)."""
    if isinstance(policy, dict):
        return {k: _normal(v) for k, v in policy.items()}
    if isinstance(policy, list):
        items = [_normal(v) for v in policy]
        return items[0] if len(items) == 1 else items
    return policy


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def _said(doing: str) -> Iterator[None]:
    """The IAM client's errors as LakeIdentityError, naming what was being done."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        reason = ": ".join(str(p) for p in (error.get("Code"), error.get("Message")) if p)
        raise LakeIdentityError(f"{doing}: HTTP {status}: {reason or 'no reason given'}") from exc
    except BotoCoreError as exc:  # no answer, a timeout, a refused connection
        raise LakeIdentityError(f"{doing}: {exc}") from exc
