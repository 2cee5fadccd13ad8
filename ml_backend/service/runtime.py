"""Everything a backend process holds once: embedding models, ledger, Chroma client, projects, worker."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping

import torch

from ..adapters.ls_client import LabelStudioGateway
from ..adapters.ml_connections import BackendIdentity, load_instance_id
from ..core.embedding import Embedder
from ..core.images import FetchPolicy, ImageFetcher
from ..core.ledger import Ledger
from ..core.store import open_chroma
from .embedders import EmbedderRegistry
from .projects import ProjectRegistry
from .settings import ServiceSettings
from .worker import Worker

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: ServiceSettings
    embedders: EmbedderRegistry
    gateway: LabelStudioGateway
    projects: ProjectRegistry
    worker: Worker
    identity: BackendIdentity

    @classmethod
    def build(
        cls, settings: ServiceSettings, embedders: Mapping[str, Embedder] | None = None,
        start_worker: bool = True, talk_to_label_studio: bool = True,
    ) -> "Runtime":
        """Open the stores. Embedding models load when a project of their modality first needs them.

        `embedders` (modality -> embedder) are used instead of loading the configured models
        (tests). `talk_to_label_studio=False` runs the loop without pushing anything (tests, benchmarks).
        """
        settings.model_dir.mkdir(parents=True, exist_ok=True)
        if settings.torch_threads:
            # Before any thread of ours exists: threads started later inherit the setting.
            torch.set_num_threads(settings.torch_threads)
        registry = EmbedderRegistry(settings.embedding_models, loaded=embedders, device=settings.device,
                                    batch_size=settings.embed_batch_size)
        gateway = LabelStudioGateway(settings.label_studio_url, settings.api_key, timeout_s=settings.label_studio_timeout_s,
                                     webhook_headers=settings.webhook_auth_headers)

        def policy(max_bytes: int) -> FetchPolicy:
            return FetchPolicy(
                trusted_origins=(settings.label_studio_url,), allowed_hosts=settings.image_host_patterns,
                max_bytes=max_bytes, timeout_s=settings.fetch_timeout_s, max_pixels=settings.max_image_pixels,
            )

        projects = ProjectRegistry(
            Ledger(settings.ledger_path),
            open_chroma(path=str(settings.chroma_path), host=settings.chroma_host, port=settings.chroma_port),
            registry, ImageFetcher(policy(settings.max_image_bytes)), settings.label_studio_url, gateway.auth_headers,
            local_files_root=settings.local_files_document_root, params_file=settings.project_params_file,
            fetch_workers=settings.fetch_workers,
            # Text files are read like images, under the same hosts and deadlines, with their own size limit.
            text_fetcher=ImageFetcher(policy(settings.max_text_bytes)),
        )
        identity = BackendIdentity(load_instance_id(settings.model_dir), settings.backend_url)
        worker = Worker(projects, gateway if talk_to_label_studio else None, backend_url=settings.backend_url,
                        identity=identity, poll_interval_s=settings.poll_interval_s, prediction_chunk=settings.prediction_chunk,
                        keep_old_predictions=settings.keep_old_predictions, max_backoff_s=settings.max_backoff_s,
                        task_check_interval_s=settings.task_check_interval_s,
                        bulk_prediction_delay_s=settings.bulk_prediction_delay_s)
        runtime = cls(settings, registry, gateway, projects, worker, identity)
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
