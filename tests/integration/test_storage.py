"""storage.py against the stack's S3 (moto server) through the provider's S3Hook."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from include.retraining.adapters import storage
from include.retraining.core.config import StorageConfig

pytestmark = pytest.mark.integration


@pytest.fixture
def store(pipeline_config) -> StorageConfig:
    return pipeline_config.storage


@pytest.fixture
def frame(make_frame) -> pd.DataFrame:
    """An extract-shaped frame: string ids, float64 numbers, strings with nulls, UTC timestamps."""
    data = make_frame(300, seed=5)
    data.loc[[3, 7], "Gender"] = None
    data.loc[[4], "Age"] = float("nan")
    return data.assign(ingested_at=data["ingested_at"].dt.as_unit("ms"))


def test_parquet_round_trip(store, frame):
    uri = storage.write_parquet(store, f"{store.prefix}/frames/a.parquet", frame)

    back = storage.read_parquet(store, uri)

    assert uri == f"s3://{store.bucket}/{store.prefix}/frames/a.parquet"
    pd.testing.assert_frame_equal(back, frame)
    assert back["Gender"].isna().tolist() == frame["Gender"].isna().tolist()
    assert back.loc[[3, 7], "Gender"].isna().all()
    assert back["Age"].isna().sum() == 1
    assert str(back["ingested_at"].dt.tz) == "UTC"


def test_content_hash_survives_a_round_trip_and_sees_changes(store, frame):
    first = storage.write_parquet(store, f"{store.prefix}/frames/1.parquet", frame)
    second = storage.write_parquet(store, f"{store.prefix}/frames/2.parquet", frame)
    original = storage.content_hash(frame)

    assert storage.content_hash(storage.read_parquet(store, first)) == original
    assert storage.content_hash(storage.read_parquet(store, second)) == original
    assert storage.content_hash(frame.copy()) == original
    assert len(original) == 64

    changed = frame.copy()
    changed.loc[150, "Age"] += 1
    renamed = frame.rename(columns={"Vintage": "vintage"})
    assert storage.content_hash(changed) != original
    assert storage.content_hash(renamed) != original
    assert storage.content_hash(frame.iloc[:-1]) != original
    assert storage.content_hash(frame.iloc[::-1]) != original  # row order is part of a snapshot


def test_put_get_and_exists(store):
    payload = "<html>drift report ✓</html>".encode()
    key = f"{store.prefix}/reports/report.html"

    uri = storage.put_bytes(store, key, payload)

    assert uri == f"s3://{store.bucket}/{key}"
    assert storage.get_bytes(store, uri) == payload
    assert storage.exists(store, uri)
    assert not storage.exists(store, f"s3://{store.bucket}/{store.prefix}/reports/missing.html")
    storage.put_bytes(store, key, b"replaced")
    assert storage.get_bytes(store, uri) == b"replaced"


def test_get_missing_key_raises(store):
    with pytest.raises(Exception, match=r"(?i)not ?found|NoSuchKey|404"):
        storage.get_bytes(store, f"s3://{store.bucket}/{store.prefix}/nothing/here.bin")


def test_run_prefix_is_portable():
    store = StorageConfig(bucket="b", prefix="retraining")

    prefix = storage.run_prefix(store, "vehicle insurance", "manual__2024-06-01T12:00:00+00:00")

    assert prefix == "retraining/vehicle_insurance/runs/manual__2024-06-01T12_00_00_00_00"
    assert storage.safe_segment("::a/b::") == "a_b"


@pytest.mark.parametrize("uri", ["/tmp/data.parquet", "http://bucket/key", "s3:/bucket/key", "S3://bucket/key"])
def test_split_uri_refuses_other_schemes(uri):
    with pytest.raises(ValueError, match="not an s3:// uri"):
        storage.split_uri(uri)


def test_split_uri():
    assert storage.split_uri("s3://bucket/a/b/c.parquet") == ("bucket", "a/b/c.parquet")
    assert storage.split_uri("s3://bucket") == ("bucket", "")


def test_snapshot_written_at_a_known_time_reads_back(store):
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    small = pd.DataFrame({"_id": ["a"], "ingested_at": [pd.Timestamp(moment)]})

    back = storage.read_parquet(store, storage.write_parquet(store, f"{store.prefix}/t.parquet", small))

    assert back.loc[0, "ingested_at"] == pd.Timestamp(moment)
