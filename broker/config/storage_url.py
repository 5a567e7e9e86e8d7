"""Where the remote tier lives: `remote.storage.url`.

Two forms:
- `file:///absolute/path` or `file://./relative/path` (relative to the working
  directory): the local-directory store, the embedded default;
- `s3://bucket` or `s3://bucket/prefix`: any S3-compatible store; endpoint,
  region and credentials come from the `remote.storage.s3.*` keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class LocalStorageUrl:
    """A directory on this machine."""

    path: Path


@dataclass(frozen=True)
class S3StorageUrl:
    """A bucket, and a key prefix without leading or trailing '/' ("" for none)."""

    bucket: str
    prefix: str


def parse_storage_url(text: str) -> LocalStorageUrl | S3StorageUrl:
    """Parse a `remote.storage.url`; raise ValueError(reason) if it is not one."""
    parts = urlsplit(text)
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    if parts.scheme == "s3" and text.startswith("s3://"):
        if not parts.netloc:
            raise ValueError("an s3:// URL needs a bucket: s3://bucket/prefix")
        return S3StorageUrl(parts.netloc, parts.path.strip("/"))
    if parts.scheme == "file" and text.startswith("file://"):
        if parts.netloc in ("", "localhost"):
            path = parts.path
        elif parts.netloc in (".", ".."):
            path = parts.netloc + parts.path
        else:
            raise ValueError("a file:// URL names a local path: file:///abs/path or file://./rel/path")
        if not path:
            raise ValueError("a file:// URL needs a path")
        return LocalStorageUrl(Path(path))
    raise ValueError("must start with file:// or s3://")


def storage_url(value: str) -> str | None:
    """Validator for `remote.storage.url`."""
    try:
        parse_storage_url(value)
    except ValueError as e:
        return str(e)
    return None
