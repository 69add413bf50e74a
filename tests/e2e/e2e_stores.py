"""The three object stores the exports land in, each a local emulator: moto (S3), gcp-storage-emulator
(GCS) and Azurite (Azure Blob), plus the Airflow connections and fsspec filesystems that reach them."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e_processes import Service, free_port, port_open, wait_for

BUCKET = "bpm-e2e"
# gcsfs's experimental hierarchical-namespace probing does not work against the emulator.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
REPO = Path(__file__).resolve().parents[2]
# Azurite's documented development account (public, fixed in Azurite itself).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Store:
    scheme: str
    service: Service
    endpoint: str
    conn_id: str | None  # None: reached without a connection (gs:// through an attached gcsfs)
    connection: dict[str, Any] | None

    def url(self, prefix: str) -> str:
        """What the DAGs get as destination: ``scheme://[conn_id@]bucket/prefix``."""
        user = f"{self.conn_id}@" if self.conn_id else ""
        return f"{self.scheme}://{user}{BUCKET}/{prefix}"

    def filesystem(self) -> Any:
        if self.scheme == "s3":
            from s3fs import S3FileSystem

            return S3FileSystem(
                key="testing",
                secret="testing",
                endpoint_url=self.endpoint,
                client_kwargs={"region_name": "us-east-1"},
            )
        if self.scheme == "gs":
            from gcsfs import GCSFileSystem

            return GCSFileSystem(endpoint_url=self.endpoint, token="anon", project="e2e")
        from adlfs import AzureBlobFileSystem

        return AzureBlobFileSystem(connection_string=azurite_connection_string(self.endpoint))


def azurite_connection_string(endpoint: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};"
    )


def azurite_command() -> str:
    path = os.environ.get("BPM_E2E_AZURITE") or str(
        REPO / ".e2e" / "node" / "node_modules" / ".bin" / "azurite-blob"
    )
    if not Path(path).exists():
        raise RuntimeError(f"Azurite not found at {path}: `make e2e` installs it from npm")
    return path


def start_s3(log_dir: Path) -> Store:
    port = free_port()
    service = Service(
        "moto-s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], log_dir=log_dir
    )
    endpoint = f"http://127.0.0.1:{port}"
    connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": json.dumps({"endpoint_url": endpoint, "region_name": "us-east-1"}),
    }
    return Store("s3", service, endpoint, "e2e_s3", connection)


def start_gcs(log_dir: Path) -> Store:
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("gcp-storage-emulator")),
        "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--default-bucket", BUCKET,
    ]  # fmt: skip
    service = Service("gcs-emulator", command, log_dir=log_dir)
    return Store("gs", service, f"http://127.0.0.1:{port}", None, None)


def start_azure(log_dir: Path) -> Store:
    port = free_port()
    command = [
        azurite_command(),
        "--blobHost", "127.0.0.1", "--blobPort", str(port),
        "--skipApiVersionCheck", "--disableTelemetry", "--silent", "--inMemoryPersistence",
    ]  # fmt: skip
    service = Service("azurite", command, log_dir=log_dir)
    endpoint = f"http://127.0.0.1:{port}"
    connection = {
        "conn_type": "wasb",
        "extra": json.dumps({"connection_string": azurite_connection_string(endpoint)}),
    }
    return Store("abfs", service, endpoint, "e2e_abfs", connection)


def wait_ready(store: Store) -> None:
    port = int(store.endpoint.rsplit(":", 1)[1])
    wait_for(lambda: port_open(port), f"{store.scheme} emulator", timeout=60, process=store.service)
    wait_for(lambda: _make_bucket(store), f"{store.scheme} bucket", timeout=30, process=store.service)


def _make_bucket(store: Store) -> bool:
    fs = store.filesystem()
    if store.scheme == "s3":
        fs.call_s3("create_bucket", Bucket=BUCKET)
    elif store.scheme == "abfs":
        fs.mkdir(BUCKET)
    # gcp-storage-emulator made its default bucket; every store must list it now.
    fs.invalidate_cache()
    return fs.exists(BUCKET)


def read_exports(store: Store, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """Every manifest under ``prefix`` (path relative to it → its entries), each file checked in the store.

    Returns the manifests with each exported entry's ``stored_size`` and ``stored_sha256`` added,
    read back from the store itself.
    """
    import hashlib

    fs = store.filesystem()
    fs.invalidate_cache()
    root = f"{BUCKET}/{prefix}"
    manifests: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(p for p in fs.find(root) if p.endswith("/manifest.json")):
        folder = path.rsplit("/", 1)[0]
        entries = json.loads(fs.cat_file(path))["files"]
        for entry in entries:
            if entry.get("status") == "external":
                continue
            data = fs.cat_file(f"{folder}/{entry['path']}")
            entry["stored_size"] = len(data)
            entry["stored_sha256"] = hashlib.sha256(data).hexdigest()
        manifests[path[len(root) + 1 :]] = entries
    return manifests
