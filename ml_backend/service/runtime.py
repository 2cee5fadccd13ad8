"""Everything a backend process holds once: CLIP model, ledger, Chroma client, projects, worker."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ..adapters.ls_client import LabelStudioGateway
from ..core.embed import ClipEmbedder
from ..core.images import FetchPolicy, ImageFetcher
from ..core.ledger import Ledger
from ..core.store import open_chroma
from .projects import ProjectRegistry
from .settings import ServiceSettings
from .worker import Worker

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: ServiceSettings
    embedder: ClipEmbedder
    gateway: LabelStudioGateway
    projects: ProjectRegistry
    worker: Worker

    @classmethod
    def build(
        cls, settings: ServiceSettings, embedder: ClipEmbedder | None = None,
        start_worker: bool = True, talk_to_label_studio: bool = True,
    ) -> "Runtime":
        """Load the model and open the stores. Raises ModelUnavailableError if CLIP cannot load.

        `talk_to_label_studio=False` runs the loop without pushing anything (tests, benchmarks).
        """
        settings.model_dir.mkdir(parents=True, exist_ok=True)
        if settings.torch_threads:
            # Before any thread of ours exists: threads started later inherit the setting.
            torch.set_num_threads(settings.torch_threads)
        embedder = embedder or ClipEmbedder(settings.clip_model, settings.device, settings.embed_batch_size)
        gateway = LabelStudioGateway(settings.label_studio_url, settings.api_key, timeout_s=settings.label_studio_timeout_s,
                                     webhook_headers=settings.webhook_auth_headers)
        policy = FetchPolicy(
            trusted_origins=(settings.label_studio_url,), allowed_hosts=settings.image_host_patterns,
            max_bytes=settings.max_image_bytes, timeout_s=settings.fetch_timeout_s, max_pixels=settings.max_image_pixels,
        )
        projects = ProjectRegistry(
            Ledger(settings.ledger_path),
            open_chroma(path=str(settings.chroma_path), host=settings.chroma_host, port=settings.chroma_port),
            embedder, ImageFetcher(policy), settings.label_studio_url, gateway.auth_headers,
            local_files_root=settings.local_files_document_root, params_file=settings.project_params_file,
            fetch_workers=settings.fetch_workers,
        )
        worker = Worker(projects, gateway if talk_to_label_studio else None, backend_url=settings.backend_url,
                        poll_interval_s=settings.poll_interval_s, prediction_chunk=settings.prediction_chunk,
                        keep_old_predictions=settings.keep_old_predictions, max_backoff_s=settings.max_backoff_s,
                        task_check_interval_s=settings.task_check_interval_s,
                        bulk_prediction_delay_s=settings.bulk_prediction_delay_s)
        projects.on_images_ready = worker.notify
        runtime = cls(settings, embedder, gateway, projects, worker)
        if start_worker:
            worker.start()
        return runtime

    def remember_label_studio(self, hostname: str | None, access_token: str | None) -> None:
        """Use the URL and token /setup sends when the environment gives none."""
        if not self.gateway.has_credentials and access_token:
            log.info("no LABEL_STUDIO_API_KEY set: using the token Label Studio sent in /setup")
            self.gateway.set_credentials(self.settings.label_studio_url or hostname, access_token)

    def delete_tasks(self, project: int, task_ids: list[int]) -> None:
        loop = self.projects.get(project)
        loop.store.delete(task_ids)
        self.projects.ledger.delete_tasks(project, task_ids)

    def close(self) -> None:
        self.worker.stop()
