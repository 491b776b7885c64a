"""A force's identities on the lake's object store: the S3 server refuses a force's keys
anywhere but under its own folder of the lake.

Each force has two users on the store's IAM API, per credentials generation ``N``:

- ``<force>.lake.g<N>``, its lake consumer: reads, writes and deletes objects under
  ``<bucket>/<prefix>/<force>/``, lists that folder and nothing else;
- ``<force>.dashboard.g<N>``, the control plane serving the force's people: reads and
  lists the same folder, writes nothing.

Their policies name the folder as the resource (and, for listing, as the only prefix a
listing may ask for), so a key of force A asking for force B's files, or for the list of
forces, gets AccessDenied from the server, whatever our code asks.

Keys are made by the server (``CreateAccessKey``: the one way AWS IAM offers) and recorded in
the force's Secret by the operator. A user holds at most the one key its Secret records:
any other (made by an attempt whose Secret was never written) is deleted, so no key lives
that nobody knows of.

The IAM API is AWS's query API, spoken by boto3, AWS's own client. SeaweedFS, the stack's
S3 server, serves it on its S3 port; on AWS itself, the same calls go to IAM's endpoint.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from peaceland.tenants.forces import validate_force_id

#: The roles with an identity on the lake's store.
LAKE_ROLES: Final = ("lake", "dashboard")
#: The name of the one inline policy each user holds.
POLICY_NAME: Final = "peaceland-lake"
_WRITE: Final = ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")
_USER = re.compile(r"^(?P<force>[a-z0-9-]+)\.(?P<role>[a-z]+)\.g(?P<generation>[0-9]+)$")


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


def iam_endpoint_of(uri: str) -> str:
    """The IAM API of the store an ``s3://`` lake URI names (SeaweedFS serves it on its S3
    port): ``scheme://endpoint_override``."""
    options = dict(parse_qsl(urlsplit(uri).query))
    if "endpoint_override" not in options:
        raise ValueError("the lake's URI names no endpoint_override: give the IAM endpoint")
    return f"{options.get('scheme', 'https')}://{options['endpoint_override']}"


def s3_user(force_id: str, role: str, generation: int) -> str:
    """The store's user of the force's ``role`` at ``generation``."""
    if role not in LAKE_ROLES:
        raise ValueError(f"no lake role called {role!r}; there are {LAKE_ROLES}")
    return f"{validate_force_id(force_id)}.{role}.g{generation}"


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
            ),
        )

    def ensure(self, force_id: str, generation: int, held: Mapping[str, S3Key]) -> dict[str, S3Key]:
        """Both roles' users at ``generation``, with their policies, and one key each: the
        one ``held`` records when the server still has it, else a new one. Returns the keys
        to record."""
        keys: dict[str, S3Key] = {}
        for role in LAKE_ROLES:
            user = s3_user(force_id, role, generation)
            with _said(f"making the store's user {user}"):
                try:
                    self._iam.create_user(UserName=user)
                except ClientError as exc:
                    if _code(exc) != "EntityAlreadyExists":
                        raise
                self._iam.put_user_policy(
                    UserName=user,
                    PolicyName=POLICY_NAME,
                    PolicyDocument=json.dumps(lake_policy(self.location, force_id, role)),
                )
                listed = self._key_ids(user)
                kept = held.get(role)
                if kept is None or kept.access_key_id not in listed:
                    kept = None
                for key_id in listed:
                    if kept is None or key_id != kept.access_key_id:
                        self._iam.delete_access_key(UserName=user, AccessKeyId=key_id)
                if kept is None:
                    made = self._iam.create_access_key(UserName=user)["AccessKey"]
                    kept = S3Key(made["AccessKeyId"], made["SecretAccessKey"])
            keys[role] = kept
        return keys

    def generations(self, force_id: str) -> set[int]:
        """The generations the force has users of on the store."""
        force = validate_force_id(force_id)
        return {
            int(match["generation"])
            for name in self._users()
            if (match := _USER.match(name)) and match["force"] == force
        }

    def retire(self, force_id: str, keep: int | None) -> list[int]:
        """Remove every generation of the force's users but ``keep`` (None: all, when the
        force is deleted): their keys, policies and the users themselves. Returns the
        generations removed."""
        removed = sorted(self.generations(force_id) - ({keep} if keep is not None else set()))
        for generation in removed:
            for role in LAKE_ROLES:
                self._remove(s3_user(force_id, role, generation))
        return removed

    def _remove(self, user: str) -> None:
        with _said(f"removing the store's user {user}"):
            try:
                for key_id in self._key_ids(user):
                    self._iam.delete_access_key(UserName=user, AccessKeyId=key_id)
                for name in self._iam.list_user_policies(UserName=user)["PolicyNames"]:
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
