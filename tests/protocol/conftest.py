"""The Flask app over a real Runtime (ledger, Chroma, worker thread) that never talks to Label Studio."""

from __future__ import annotations

import pytest

from ml_backend.service.app import create_app
from ml_backend.service.runtime import Runtime
from ml_backend.service.settings import ServiceSettings
from tests.conftest import CHOICES_CONFIG, image_uri

WAIT_S = 30.0


class Backend:
    """A test client plus the runtime behind it, with Label Studio-shaped request builders."""

    def __init__(self, app, runtime: Runtime):
        self.app = app
        self.runtime = runtime
        self.client = app.test_client()
        self.responses = []  # every response, for the "no secret in any body" check

    # -- raw calls ---------------------------------------------------------------
    def post(self, path, body=None, **kwargs):
        response = self.client.post(path, json=body, **kwargs) if body is not None else self.client.post(path, **kwargs)
        self.responses.append(response)
        return response

    def get(self, path, **kwargs):
        response = self.client.get(path, **kwargs)
        self.responses.append(response)
        return response

    # -- Label Studio's requests --------------------------------------------------------
    def setup(self, project=1, schema=CHOICES_CONFIG, extra_params=None, **kwargs):
        body = {"project": f"{project}.1700000000", "schema": schema, "hostname": "http://127.0.0.1:9",
                "access_token": "setup-token-XYZ", "model_version": "", "extra_params": extra_params}
        return self.post("/setup", body, **kwargs)

    def predict(self, tasks, project=1, schema=CHOICES_CONFIG, **kwargs):
        body = {"tasks": [{"id": t, "data": data} for t, data in tasks], "project": f"{project}.1700000000",
                "label_config": schema, "params": {"login": None, "password": None, "context": None}}
        return self.post("/predict", body, **kwargs)

    def webhook(self, action, project=1, schema=CHOICES_CONFIG, **payload):
        return self.post("/webhook", {"action": action, "project": {"id": project, "label_config": schema}, **payload})

    def tasks_created(self, task_ids, project=1, schema=CHOICES_CONFIG):
        return self.webhook("TASKS_CREATED", project, schema, tasks=[task(t) for t in task_ids])

    def annotate(self, annotation_id, task_id, value, action="ANNOTATION_CREATED", project=1, schema=CHOICES_CONFIG,
                 control=("relevance", "choices"), cancelled=False):
        name, kind = control
        result = [] if value is None else [
            {"from_name": name, "to_name": "img", "type": kind, "value": {kind: value}}]
        annotation = {"id": annotation_id, "task": task_id, "result": result, "was_cancelled": cancelled}
        return self.webhook(action, project, schema, task=task(task_id), annotation=annotation)

    # -- state --------------------------------------------------------------------------
    def wait(self, project=1):
        assert self.runtime.worker.wait_idle(project, WAIT_S), "the worker did not finish in time"

    def status(self, project=1):
        response = self.get(f"/projects/{project}/status")
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def loop(self, project=1):
        return self.runtime.projects.get(project)


def task(task_id):
    return {"id": task_id, "data": {"image": image_uri(task_id)}}


@pytest.fixture
def make_backend(tmp_path, tiny_clip_dir, tiny_text_dir, embedder, text_embedder, clean_env):
    built = []

    def build(embedders=None, **overrides) -> Backend:
        """A backend on the tiny models; `embedders` (modality -> embedder) replaces those preloaded."""
        values = dict(model_dir=tmp_path / f"model-{len(built)}", image_embedding_model=str(tiny_clip_dir),
                      text_embedding_model=str(tiny_text_dir), label_studio_url="http://127.0.0.1:9",
                      poll_interval_s=0.2, fetch_workers=2)
        values.update(overrides)
        settings = ServiceSettings(**values)
        preloaded = {"image": embedder, "text": text_embedder} if embedders is None else embedders
        runtime = Runtime.build(settings, embedders=preloaded, talk_to_label_studio=False)
        built.append(runtime)
        return Backend(create_app(settings, runtime), runtime)

    yield build
    for runtime in built:
        runtime.close()


@pytest.fixture
def backend(make_backend) -> Backend:
    return make_backend()
