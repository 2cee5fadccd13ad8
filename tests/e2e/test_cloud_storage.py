"""Images in a cloud bucket, connected to Label Studio as S3 storage, are embedded through Label Studio.

A synced S3 storage gives tasks like `s3://bucket/key`; only Label Studio holds the bucket's
credentials. The backend asks Label Studio's `/tasks/<id>/resolve/` for each file, as the
labeling page does. The bucket is moto's S3 server on loopback, which the real Label Studio
reaches with its own boto3 (installed beside it in .venv-ls by scripts/setup_env.sh).

- Proxied (the storage's "Use pre-signed URLs" off): Label Studio passes the bytes on, and
  every image is embedded with no further setting.
- Presigned (on, Label Studio's default): Label Studio redirects to the bucket, which the
  backend fetches only from IMAGE_HOSTS: without it each task fails with a message that says
  so; with the bucket's host there, every image is embedded.
"""

from __future__ import annotations

import subprocess

import pytest
import requests

from ml_backend.adapters.ls_admin import admin_client, connect_backend, create_project
from ml_backend.adapters.ls_client import LabelStudioClient
from scripts.demo import make_shape_images
from scripts.servers import LabelStudioServer, free_port

from .conftest import ROOT, idle, wait_for

MOTO_SERVER = ROOT / ".venv-ls" / "bin" / "moto_server"
BUCKET = "shapes"
IMAGES = 6


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """moto's S3 on loopback, holding a bucket of PNGs; yields its endpoint URL."""
    if not MOTO_SERVER.exists():
        pytest.fail(f"{MOTO_SERVER} is missing: run bash scripts/setup_env.sh", pytrace=False)
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    server = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                              stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(endpoint), timeout_s=60, what="moto's S3 server")
        requests.put(f"{endpoint}/{BUCKET}", timeout=10).raise_for_status()
        for path in make_shape_images(tmp_path_factory.mktemp("shapes"), per_kind=2)[:IMAGES]:
            requests.put(f"{endpoint}/{BUCKET}/{path.name}", data=path.read_bytes(), timeout=10).raise_for_status()
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def _answers(endpoint: str) -> bool:
    try:
        return requests.get(endpoint, timeout=2).status_code < 500
    except requests.ConnectionError:
        return False


def project_on_bucket(label_studio: LabelStudioServer, backend, endpoint: str, title: str, presign: bool) -> int:
    """A project with the backend connected first, then S3 storage synced into it: the tasks reach the backend
    as Label Studio creates them (the webhook carries the raw s3:// URIs), not only from its listings."""
    client = admin_client(label_studio.url, label_studio.api_token)
    project = create_project(client, title, (ROOT / "label_config.xml").read_text())
    connect_backend(client, project, backend.url, "CLIP vector queue", {"prompt": "a red circle", "batch_size": 3})
    storage = client.import_storage.s3.create(
        project=project, bucket=BUCKET, s3endpoint=endpoint, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing", use_blob_urls=True, presign=presign, regex_filter=r".*\.png",
    )
    client.import_storage.s3.sync(id=storage.id)
    # The backend's own listing reads them as stored, as the webhook carried them (Label Studio would
    # otherwise rewrite them to links on its HOSTNAME).
    refs = [task["data"]["image"] for task in LabelStudioClient(label_studio.url, label_studio.api_token).iter_tasks(project)]
    assert len(refs) == IMAGES and all(ref.startswith(f"s3://{BUCKET}/") for ref in refs), refs
    return project


def settled(backend, project: int, where) -> dict:
    return wait_for(lambda: idle(backend, project, where), what="the backend to settle on the bucket's tasks")


def test_proxied_storage_files_are_embedded_through_label_studio(label_studio, start_backend, bucket):
    backend = start_backend()
    project = project_on_bucket(label_studio, backend, bucket, "e2e: S3 storage, proxied", presign=False)
    status = settled(backend, project, lambda s: s["tasks"]["embedded"] + s["tasks"]["failed"] == IMAGES and s["view"])
    assert status["tasks"] == {"pending": 0, "embedded": IMAGES, "failed": 0}, status["task_errors"]
    assert len(status["view"]["task_ids"]) == 3


def test_presigned_storage_files_need_the_buckets_host_in_image_hosts(label_studio, start_backend, bucket, tmp_path):
    model_dir, port = tmp_path / "model_dir", free_port()
    refused = start_backend(model_dir=model_dir, port=port)
    project = project_on_bucket(label_studio, refused, bucket, "e2e: S3 storage, presigned", presign=True)
    status = settled(refused, project, lambda s: s["tasks"]["failed"] == IMAGES)
    assert all("IMAGE_HOSTS" in e["error"] and "pre-signed" in e["error"] for e in status["task_errors"]), \
        status["task_errors"]
    refused.stop()

    # What the status tells the admin to do: the same backend (its MODEL_DIR, its connection), restarted with
    # the bucket's host allowed. The failed tasks are read again; nothing is deleted or imported again.
    allowed = start_backend(model_dir=model_dir, port=port, IMAGE_HOSTS="127.0.0.1/32")
    status = settled(allowed, project, lambda s: s["tasks"]["embedded"] == IMAGES)
    assert status["tasks"]["failed"] == 0, status["task_errors"]
