"""Everything a backend process holds once: embedding models, ledger, Chroma client, projects, worker."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from ..adapters.ls_client import LabelStudioClient, LabelStudioUnavailable
from ..adapters.ls_gateway import LabelStudioGateway
from ..adapters.ls_records import LabelStudioRecords
from ..adapters.ml_connections import BackendIdentity, load_instance_id
from ..core.audit_log import AuditLog
from ..core.embedding import Embedder
from ..core.errors import BackendError, BadRequestError, UnknownProjectError
from ..core.facts import Facts
from ..core.fetch import FetchPolicy, ImageFetcher
from ..core.ledger import Ledger
from ..core.store import open_chroma
from .embedders import EmbedderRegistry
from .evaluation import Evaluations
from .model_dir import StorageWatch
from .projects import ProjectRegistry
from .pull import LabelStudioPull
from .push import LabelStudioPush
from .redaction import redactor
from .settings import ServiceSettings
from .worker import Worker

log = logging.getLogger(__name__)


REFUSED_TOKENS_KEPT = 1024


class SetupTokenRefused(BackendError):
    """The token /setup sent is refused by Label Studio."""

    http_status = 403
    code = "token_refused"

    def __init__(self, label_studio_url: str):
        super().__init__(
            f"Label Studio at {label_studio_url} refused the access token this /setup sent: it is not used. "
            "Is LABEL_STUDIO_URL this Label Studio? Or set LABEL_STUDIO_API_KEY.")


@dataclass
class Runtime:
    settings: ServiceSettings
    embedders: EmbedderRegistry
    gateway: LabelStudioClient
    projects: ProjectRegistry
    worker: Worker
    identity: BackendIdentity
    evaluations: Evaluations
    storage: StorageWatch
    talks_to_label_studio: bool = True
    _refused_tokens: OrderedDict = field(default_factory=OrderedDict, repr=False)  # sha256 of refused /setup tokens
    _checking_token: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(
        cls, settings: ServiceSettings, embedders: Mapping[str, Embedder] | None = None,
        start_worker: bool = True, talk_to_label_studio: bool = True, chroma: Any = None,
    ) -> "Runtime":
        """Open the stores. Embedding models load when a project of their modality first needs them.

        `embedders` (modality -> embedder) are used instead of loading the configured models,
        and `chroma` (a client) instead of opening the configured Chroma (tests).
        `talk_to_label_studio=False` runs the loop without pushing anything (tests, benchmarks).
        """
        settings.model_dir.mkdir(parents=True, exist_ok=True)
        if settings.torch_threads:
            # Before any thread of ours exists: threads started later inherit the setting.
            torch.set_num_threads(settings.torch_threads)
        registry = EmbedderRegistry(settings.embedding_models, loaded=embedders, device=settings.device,
                                    batch_size=settings.embed_batch_size)
        gateway = LabelStudioClient(settings.label_studio_url, settings.api_key, timeout_s=settings.label_studio_timeout_s,
                                    webhook_headers=settings.webhook_auth_headers)

        def policy(max_bytes: int) -> FetchPolicy:
            return FetchPolicy(
                trusted_origins=(settings.label_studio_url,), allowed_hosts=settings.image_host_patterns,
                allow_list_setting="IMAGE_HOSTS", max_bytes=max_bytes, timeout_s=settings.fetch_timeout_s,
                max_pixels=settings.max_image_pixels,
            )

        ledger = Ledger(settings.ledger_path, max_task_data_bytes=settings.max_task_data_bytes)
        evaluations = Evaluations(AuditLog(settings.model_dir / "evaluation.sqlite"))
        facts = Facts(ledger)
        records = LabelStudioRecords(ledger.file)  # Label Studio's side, in the ledger's file
        projects = ProjectRegistry(
            ledger, facts, records,
            chroma or open_chroma(path=str(settings.chroma_path), host=settings.chroma_host, port=settings.chroma_port),
            registry, ImageFetcher(policy(settings.max_image_bytes)), settings.label_studio_url, gateway.auth_headers,
            local_files_root=settings.local_files_document_root, params_file=settings.project_params_file,
            fetch_workers=settings.fetch_workers,
            # Text files are read like images, under the same hosts and deadlines, with their own size limit.
            text_fetcher=ImageFetcher(policy(settings.max_text_bytes)), audit_log=evaluations.audit,
        )
        facts.on_deleted(records.note_deleted)
        facts.on_deleted(projects.forget_vectors)
        identity = BackendIdentity(load_instance_id(settings.model_dir), settings.backend_url)
        worker = (label_studio_worker(settings, projects, gateway, identity, evaluations) if talk_to_label_studio
                  else Worker(projects, poll_interval_s=settings.poll_interval_s, evaluations=evaluations))
        projects.on_items_ready = worker.notify
        runtime = cls(settings, registry, gateway, projects, worker, identity, evaluations,
                      StorageWatch(settings.ledger_path), talks_to_label_studio=talk_to_label_studio)
        if start_worker:
            worker.start()
        return runtime

    def adopt_setup_token(self, access_token: Any) -> None:
        """Use the token /setup sends when the environment gives none, once Label Studio accepts it.

        Anyone who can reach /setup can send a token, so it is checked against Label Studio
        (LABEL_STUDIO_URL, never the caller's `hostname`) before it replaces the one in use,
        and only then learnt by the log redactor. A refused token raises `SetupTokenRefused`;
        when Label Studio cannot be asked, or another /setup is being checked right now, the
        token is simply not used (a later /setup tries again).
        """
        if self.settings.api_key or not isinstance(access_token, str) or not access_token.strip():
            return
        token = access_token.strip()
        if not (token.isascii() and token.isprintable()):
            # an HTTP header cannot carry it, so no Label Studio token looks like this
            raise BadRequestError("access_token must be printable ASCII, as Label Studio's tokens are: it is not used")
        if self.gateway.uses_key(token):
            return
        digest = hashlib.sha256(token.encode()).hexdigest()
        if digest in self._refused_tokens:
            raise SetupTokenRefused(self.gateway.url)
        if not self._checking_token.acquire(blocking=False):
            return  # one check at a time: a flood of /setup calls must not become a flood of calls to Label Studio
        try:
            accepted = self.gateway.verify_key(token)
        except LabelStudioUnavailable as exc:
            log.warning("cannot check the token /setup sent, not using it: %s", exc)
            return
        finally:
            self._checking_token.release()
        if not accepted:
            self._refused_tokens[digest] = None
            while len(self._refused_tokens) > REFUSED_TOKENS_KEPT:
                self._refused_tokens.popitem(last=False)
            raise SetupTokenRefused(self.gateway.url)
        redactor.add_secrets([token])
        self.gateway.set_credentials(token)
        log.info("no LABEL_STUDIO_API_KEY set: using the token Label Studio sent in /setup (checked with Label Studio)")

    def confirm_project(self, project: int) -> None:
        """Raise `UnknownProjectError` if Label Studio says it has no project `project`.

        Asked once, when /setup first names a project, so ids Label Studio does not know
        create no state. Without credentials, or with Label Studio unreachable, /setup is
        taken at its word (it is how Label Studio connects a backend).
        """
        if not self.talks_to_label_studio or not self.gateway.has_credentials:
            return
        try:
            exists = self.gateway.project_exists(project)
        except BackendError as exc:
            log.warning("project %s: cannot confirm it with Label Studio (%s); accepting /setup", project, exc)
            return
        if not exists:
            raise UnknownProjectError(f"Label Studio at {self.gateway.url} has no project {project}")

    @property
    def facts(self) -> Facts:
        return self.projects.facts

    @property
    def records(self) -> LabelStudioRecords:
        return self.projects.records

    def close(self) -> None:
        self.worker.stop()


def label_studio_worker(settings: ServiceSettings, projects: ProjectRegistry, gateway: LabelStudioGateway,
                        identity: BackendIdentity | None = None, evaluations: Evaluations | None = None) -> Worker:
    """The worker that keeps Label Studio up to date: pulls through `gateway`, pushes through it."""
    pull = LabelStudioPull(gateway, projects, backend_url=settings.backend_url, identity=identity)
    push = LabelStudioPush(gateway, projects, prediction_chunk=settings.prediction_chunk,
                           keep_old_predictions=settings.keep_old_predictions,
                           bulk_prediction_delay_s=settings.bulk_prediction_delay_s, evaluations=evaluations)
    return Worker(projects, pull, push, poll_interval_s=settings.poll_interval_s, max_backoff_s=settings.max_backoff_s,
                  task_check_interval_s=settings.task_check_interval_s, evaluations=evaluations)
