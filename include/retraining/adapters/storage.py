"""Everything that touches object storage (S3, MinIO, moto), through the provider's S3Hook.

Snapshots are run-scoped and content-hashed: ``<prefix>/<collection>/snapshots/<run>/<hash>/data.parquet``.
Nothing is ever overwritten, so a model version's lineage tag keeps pointing at the exact rows.
"""

from __future__ import annotations

import hashlib
import io
import re
from typing import TYPE_CHECKING

import pandas as pd

from include.retraining.core.config import StorageConfig
from include.retraining.core.frames import frame_of

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook


def _hook(storage: StorageConfig) -> S3Hook:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=storage.conn_id)


def content_hash(frame: pd.DataFrame) -> str:
    """A hash of the rows and column names, independent of Parquet encoder details."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def safe_segment(text: str) -> str:
    """Airflow run ids contain ':' and '+'; keep keys portable."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def run_prefix(storage: StorageConfig, dataset: str, run_id: str) -> str:
    return f"{storage.prefix}/{safe_segment(dataset)}/runs/{safe_segment(run_id)}"


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// uri: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def put_bytes(storage: StorageConfig, key: str, data: bytes) -> str:
    _hook(storage).load_bytes(data, key=key, bucket_name=storage.bucket, replace=True)
    return f"s3://{storage.bucket}/{key}"


def get_bytes(storage: StorageConfig, uri: str) -> bytes:
    bucket, key = split_uri(uri)
    return _hook(storage).get_key(key, bucket_name=bucket).get()["Body"].read()


def write_parquet(storage: StorageConfig, key: str, frame: pd.DataFrame) -> str:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return put_bytes(storage, key, buffer.getvalue())


def read_parquet(storage: StorageConfig, uri: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return frame_of(pq.read_table(pa.BufferReader(get_bytes(storage, uri))))


def exists(storage: StorageConfig, uri: str) -> bool:
    bucket, key = split_uri(uri)
    return _hook(storage).check_for_key(key, bucket_name=bucket)


DENIED_CODES = {"AccessDenied", "Forbidden", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}


def denied(error: BaseException, storage: StorageConfig) -> str | None:
    """One sentence for an S3 permission error: the access key, the action and the bucket/prefix, the
    grant that fixes it; None for any other error."""
    from botocore.exceptions import ClientError

    if not isinstance(error, ClientError) or error.response.get("Error", {}).get("Code") not in DENIED_CODES:
        return None
    code, action = error.response["Error"]["Code"], error.operation_name
    where = f"s3://{storage.bucket}/{storage.prefix}/"
    return (
        f"S3 access key {_access_key(storage)!r} (connection {storage.conn_id}) was refused {action} on {where} "
        f"({code}): grant it s3:ListBucket on arn:aws:s3:::{storage.bucket} and s3:GetObject, s3:PutObject on "
        f"arn:aws:s3:::{storage.bucket}/{storage.prefix}/* (MinIO: mc admin policy attach), or fix the "
        f"connection's keys"
    )


def _access_key(storage: StorageConfig) -> str:
    try:
        return _hook(storage).get_credentials().access_key or "(none)"
    except Exception:
        return "(unknown)"
