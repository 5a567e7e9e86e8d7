"""Object-store backends for the remote tier, and `open_store` to pick one from config.

`S3Store` is imported lazily: loading aiobotocore costs a noticeable fraction of
a second, and a broker on the local-directory store never needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from remote_index.store.base import (
    Body,
    CompletedPart,
    MultipartUpload,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    StoreError,
    TransientStoreError,
    body_size,
)
from remote_index.store.local import LocalDirectoryStore, StoreFaults

if TYPE_CHECKING:
    from broker.config import BrokerConfig
    from remote_index.store.s3 import S3Store

__all__ = [
    "Body",
    "CompletedPart",
    "LocalDirectoryStore",
    "MultipartUpload",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "PreconditionFailed",
    "S3Store",
    "StoreError",
    "StoreFaults",
    "TransientStoreError",
    "body_size",
    "open_store",
]


def open_store(config: BrokerConfig) -> ObjectStore:
    """The store `remote.storage.url` names: a local directory (relative paths are
    relative to the working directory) or an S3 bucket configured by the
    `remote.storage.s3.*` keys. No I/O beyond creating the local directory; an S3
    client connects on first use."""
    from broker.config.storage_url import LocalStorageUrl

    url = config.remote_storage_url()
    if isinstance(url, LocalStorageUrl):
        return LocalDirectoryStore(url.path)
    from remote_index.store.s3 import S3Store

    access_key = config.get("remote.storage.s3.access.key.id")
    secret_key = config.get("remote.storage.s3.secret.access.key")
    return S3Store(
        url.bucket,
        url.prefix,
        endpoint_url=config.get("remote.storage.s3.endpoint.url"),
        region=config.get("remote.storage.s3.region"),
        path_style=config.get("remote.storage.s3.path.style.access"),
        access_key_id=access_key.value if access_key is not None else None,
        secret_access_key=secret_key.value if secret_key is not None else None,
    )


def __getattr__(name: str) -> Any:
    if name == "S3Store":
        from remote_index.store.s3 import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
