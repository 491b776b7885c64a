"""A lake's real directory behind a storage that a test breaks where it needs to, and an
object store a test fills with what a hostile one would list."""

from __future__ import annotations

import io
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.fs as pafs

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


class FlatStore(pafs.FileSystemHandler):  # type: ignore[misc]  # pyarrow ships no types
    """An object store as S3 keeps one: flat keys, any bytes in a name (``..`` included),
    nothing normalised; held in memory, behind pyarrow's ``PyFileSystem``. What a hostile
    or broken store can list, which a local directory cannot."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        #: Keys served shorter than they are listed (a copy cut short).
        self.short: set[str] = set()

    def get_type_name(self) -> str:
        return "flat"

    def normalize_path(self, path: str) -> str:
        return path

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return [
            pafs.FileInfo(p, pafs.FileType.File, size=len(self.objects[p]))
            if p in self.objects
            else pafs.FileInfo(p, pafs.FileType.NotFound)
            for p in paths
        ]

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        top = selector.base_dir.rstrip("/") + "/"
        return [
            pafs.FileInfo(key, pafs.FileType.File, size=len(data), mtime=datetime.now(UTC))
            for key, data in sorted(self.objects.items())
            if key.startswith(top)
        ]

    def open_input_stream(self, path: str) -> pa.NativeFile:
        if path not in self.objects:
            raise FileNotFoundError(path)
        data = self.objects[path]
        return pa.PythonFile(io.BytesIO(data[:-1] if path in self.short else data), mode="r")

    def open_input_file(self, path: str) -> pa.NativeFile:
        return self.open_input_stream(path)

    def open_output_stream(self, path: str, metadata: object) -> pa.NativeFile:  # noqa: ARG002
        objects = self.objects

        class Upload(io.BytesIO):
            def close(self) -> None:
                objects[path] = self.getvalue()
                super().close()

        return pa.PythonFile(Upload(), mode="w")

    def open_append_stream(self, path: str, metadata: object) -> pa.NativeFile:
        raise NotImplementedError

    def create_dir(self, path: str, recursive: bool) -> None:
        pass

    def delete_dir(self, path: str) -> None:
        pass

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        pass

    def delete_root_dir_contents(self) -> None:
        pass

    def delete_file(self, path: str) -> None:
        self.objects.pop(path, None)

    def move(self, src: str, dest: str) -> None:
        self.objects[dest] = self.objects.pop(src)

    def copy_file(self, src: str, dest: str) -> None:
        self.objects[dest] = self.objects[src]
