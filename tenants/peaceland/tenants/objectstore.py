"""How a process reaches an S3-compatible object store: the lake's production home."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit


@dataclass(frozen=True, slots=True)
class S3Access:
    """An S3 API's address, an access key and its secret, and the bucket to use."""

    #: ``http://host:port`` or ``https://host:port``.
    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    bucket: str
    #: What the store calls its one region (an S3 client needs one to sign).
    region: str = "us-east-1"

    def lake_uri(self, prefix: str = "") -> str:
        """The lake at ``prefix`` of the bucket, as ``s3://`` with the endpoint in its query
        (pyarrow's form; the keys are never in it: they come from the environment, or from
        this object)."""
        parts = urlsplit(self.endpoint)
        query = urlencode(
            {"endpoint_override": parts.netloc, "scheme": parts.scheme, "region": self.region}
        )
        path = f"{self.bucket}/{prefix.strip('/')}".rstrip("/")
        return f"s3://{path}?{query}"
