"""A lake's real directory behind a storage that a test breaks where it needs to."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

from peaceland.analytics.lake import Listed, Storage


@dataclass
class DelegatingStorage:
    """Every call goes to ``inner``, the real directory; a test overrides what it breaks."""

    inner: Storage

    def locate(self, path: str) -> str:
        return self.inner.locate(path)

    def put(self, path: str, data: bytes) -> None:
        self.inner.put(path, data)

    def get(self, path: str) -> bytes | None:
        return self.inner.get(path)

    def delete(self, path: str) -> None:
        self.inner.delete(path)

    def list(self, prefix: str, *, times: bool = True) -> list[Listed]:
        return self.inner.list(prefix, times=times)

    def lock(self, path: str) -> AbstractContextManager[None]:
        return self.inner.lock(path)
