"""S3: moto's server, bucket mlops-artifacts. moto keeps objects in memory only, but MLflow's database (on
disk) points at artifacts in the bucket: `down` copies every object to <state>/s3 and a fresh moto gets
them back. A crashed moto loses what was written since the last `down`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .supervisor import BIN, HOST, Service, http_get

BUCKET = "mlops-artifacts"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def client(port: int):
    import boto3  # lazily: `status` does not pay for it

    return boto3.client(
        "s3", endpoint_url=f"http://{HOST}:{port}", region_name=AWS["AWS_DEFAULT_REGION"],
        aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"], aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"],
    )  # fmt: skip


def save(state: Path, port: int) -> int:
    s3, tmp = client(port), state / "s3.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "objects").mkdir(parents=True)
    buckets, objects = [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]], []
    for bucket in buckets:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                file = f"{len(objects):08d}"  # keys may hold any character: never file names
                response = s3.get_object(Bucket=bucket, Key=item["Key"])
                with (tmp / "objects" / file).open("wb") as out:
                    shutil.copyfileobj(response["Body"], out)
                meta = {"content_type": response.get("ContentType"), "metadata": response.get("Metadata", {})}
                objects.append({"bucket": bucket, "key": item["Key"], "file": file} | meta)
    (tmp / "manifest.json").write_text(json.dumps({"buckets": buckets, "objects": objects}))
    shutil.rmtree(state / "s3", ignore_errors=True)
    tmp.rename(state / "s3")  # only a complete copy replaces the previous one
    return len(objects)


def prepare(state: Path, port: int, fresh: bool) -> None:
    """A fresh moto gets the saved objects back; the bucket exists either way."""
    s3, manifest_file = client(port), state / "s3" / "manifest.json"
    if fresh and manifest_file.exists():
        manifest = json.loads(manifest_file.read_text())
        for bucket in manifest["buckets"]:
            s3.create_bucket(Bucket=bucket)
        for item in manifest["objects"]:
            extra = {"ContentType": item["content_type"]} if item["content_type"] else {}
            with (state / "s3" / "objects" / item["file"]).open("rb") as body:
                s3.put_object(Bucket=item["bucket"], Key=item["key"], Body=body, Metadata=item["metadata"], **extra)
        print(f"s3: restored {len(manifest['objects'])} objects from {state / 's3'}")
    s3.create_bucket(Bucket=BUCKET)  # moto answers 200 for a bucket it already has


def env(state: Path, ports: dict[str, int]) -> dict[str, str]:
    url = f"http://{HOST}:{ports['s3']}"
    conn = {"conn_type": "aws", "login": AWS["AWS_ACCESS_KEY_ID"], "password": AWS["AWS_SECRET_ACCESS_KEY"]}
    conn["extra"] = {"endpoint_url": url, "region_name": AWS["AWS_DEFAULT_REGION"]}
    return AWS | {
        "AWS_ENDPOINT_URL_S3": url,
        "MLFLOW_S3_ENDPOINT_URL": url,  # MLflow hands out pre-signed URLs on it: clients must reach it
        "S3_BUCKET": BUCKET,
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(conn, separators=(",", ":")),
        "AIRFLOW_VAR_ARTIFACTS_BUCKET": BUCKET,
    }


SERVICE = Service(
    "s3",
    command=lambda state, ports: [str(BIN / "moto_server"), "-H", HOST, "-p", str(ports["s3"])],
    ready=lambda port: http_get(f"http://{HOST}:{port}/") is not None,
    describe=lambda state, port: f"http://{HOST}:{port}  bucket {BUCKET}",
    env=env,
    after_ready=prepare,
)
