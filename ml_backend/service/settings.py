"""Service-wide settings, read once from the environment (Label Studio's usual names)."""

from __future__ import annotations

import ipaddress
import logging
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import torch
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..adapters.ml_connections import basic_auth_header
from ..core.embed import DEFAULT_MODEL
from ..core.embed_text import DEFAULT_TEXT_MODEL
from ..core.ledger import MAX_TASK_DATA_BYTES
from ..core.params import params_file_problems


class ServiceSettings(BaseSettings):
    """Environment variables (case-insensitive), with defaults for a local run."""

    # allow_inf_nan=False: POLL_INTERVAL_S=inf would pass gt=0 and park the worker for good.
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, allow_inf_nan=False)

    label_studio_url: str = Field("http://localhost:8080", description="Label Studio base URL, as the backend reaches it")
    label_studio_api_key: SecretStr | None = Field(None, description="legacy token or personal access token")
    model_dir: Path = Field(Path("model_dir"), description="the ledger (SQLite) and the embedded Chroma store live here")
    image_embedding_model: str = Field(
        DEFAULT_MODEL, validation_alias=AliasChoices("image_embedding_model", "clip_model"),
        description="model for <Image> projects: a transformers hub id or folder (CLIP-family models also embed "
        "prompts), or efficientnet-lite0; CLIP_MODEL is read too, for older setups")
    text_embedding_model: str = Field(
        DEFAULT_TEXT_MODEL, description="sentence-embedding model for <Text> projects: hub id or local folder")
    device: str = Field("cpu", description="torch device for the embedding models")
    embed_batch_size: int = Field(32, ge=1, le=1024)
    fetch_workers: int = Field(4, ge=1, le=64, description="threads fetching and decoding images")
    torch_threads: int | None = Field(
        None, ge=1, le=256, description="torch intra-op threads (default: torch's, one per core); 1 suits tiny models")
    chroma_host: str | None = Field(None, description="Chroma server host; unset = embedded store in MODEL_DIR")
    chroma_port: int = Field(8000, ge=1, le=65535)
    basic_auth_user: str | None = None
    basic_auth_pass: SecretStr | None = None
    allow_unauthenticated: bool = Field(
        False, description="serve a HOST reachable beyond loopback without BASIC_AUTH_USER/BASIC_AUTH_PASS")
    backend_url: str | None = Field(None, description="this backend's URL as Label Studio reaches it (for webhooks)")
    image_hosts: str = Field("", description="comma-separated host patterns / CIDRs images may be fetched from")
    local_files_document_root: str | None = Field(None, description="Label Studio's LOCAL_FILES_DOCUMENT_ROOT, if shared")
    project_params_file: Path | None = Field(None, description="JSON: {project id or 'default': params}")
    max_image_bytes: int = Field(20 * 2**20, ge=1)
    max_image_pixels: int = Field(40_000_000, ge=1)
    max_text_bytes: int = Field(2 * 2**20, ge=1, description="largest text file a <Text valueType=\"url\"> task may point at")
    fetch_timeout_s: float = Field(10.0, gt=0)
    max_request_bytes: int = Field(50 * 2**20, ge=1024, description="largest JSON body accepted")
    max_task_data_bytes: int = Field(
        MAX_TASK_DATA_BYTES, ge=1024, description="largest task data (JSON) kept per task; larger tasks fail")
    poll_interval_s: float = Field(2.0, gt=0, description="worker wake-up period for retries")
    max_backoff_s: float = Field(60.0, gt=0, description="longest wait between retries while Label Studio is unreachable")
    label_studio_timeout_s: float = Field(15.0, gt=0, description="timeout of one call to Label Studio's API")
    task_check_interval_s: float = Field(
        30.0, gt=0, description="how often task and annotation counts are compared with Label Studio's")
    prediction_chunk: int = Field(200, ge=1, description="predictions pushed per Label Studio call (one call in flight delays a batch)")
    bulk_prediction_delay_s: float = Field(
        10.0, ge=0, description="after a rating's batch is out, wait this long for the next before pushing every task's prediction")
    keep_old_predictions: bool = Field(False, description="keep predictions of superseded head versions in Label Studio")
    log_level: str = "INFO"
    host: str = Field("0.0.0.0", description="address the backend listens on")
    port: int = Field(9090, ge=1, le=65535)
    threads: int = Field(16, ge=2, le=256, description="request threads (waitress)")

    @field_validator("label_studio_url", "backend_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL such as http://localhost:8080")
        return value.strip()

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        if not isinstance(logging.getLevelName(value.strip().upper()), int):
            raise ValueError("not a log level: DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value.strip().upper()

    @field_validator("device")
    @classmethod
    def _torch_device(cls, value: str) -> str:
        try:
            torch.device(value.strip())
        except RuntimeError:
            raise ValueError("not a torch device such as cpu, cuda or cuda:0") from None
        return value.strip()

    @property
    def embedding_models(self) -> dict[str, str]:
        """Modality -> the model spec that serves its projects."""
        return {"image": self.image_embedding_model, "text": self.text_embedding_model}

    @property
    def image_host_patterns(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.image_hosts.split(",") if part.strip())

    @property
    def basic_auth_password(self) -> str:
        """BASIC_AUTH_PASS in clear ("" when unset): for comparing, sending and redacting it."""
        return self.basic_auth_pass.get_secret_value() if self.basic_auth_pass else ""

    @property
    def webhook_auth_headers(self) -> dict[str, str]:
        """The Authorization header Label Studio's webhooks must carry when basic auth is on."""
        if not self.basic_auth_user:
            return {}
        return basic_auth_header(self.basic_auth_user, self.basic_auth_password)

    @property
    def has_basic_auth(self) -> bool:
        return bool(self.basic_auth_user and self.basic_auth_password)

    def exposure_problem(self) -> str | None:
        """Why this backend must not start as configured: reachable beyond loopback with no credentials.

        Anyone who reaches the port could otherwise feed it webhooks, /setup calls and
        image URLs. None when HOST is loopback, credentials are set, or the admin opted out.
        """
        if self.has_basic_auth or self.allow_unauthenticated or _is_loopback(self.host):
            return None
        return (
            f"HOST={self.host} makes the backend reachable beyond this machine, and it has no credentials. "
            "Set BASIC_AUTH_USER and BASIC_AUTH_PASS (and give the same in Label Studio's connection form, "
            "or connect with scripts/connect_project.py, which registers them), or listen on loopback only "
            "(HOST=127.0.0.1), or set ALLOW_UNAUTHENTICATED=true to serve it open anyway.")

    def credentials_problem(self) -> str | None:
        """Why Label Studio could never send these basic-auth credentials (the backend would refuse every
        request from it), or None."""
        password = self.basic_auth_password
        if not self.basic_auth_user:
            return "BASIC_AUTH_PASS is set without BASIC_AUTH_USER: set both, or neither" if password else None
        if ":" in self.basic_auth_user:
            return "BASIC_AUTH_USER holds ':', which basic auth uses to end the user name: no client can send it"
        if not password:
            return ("BASIC_AUTH_USER is set without BASIC_AUTH_PASS: Label Studio cannot connect with an empty "
                    "password; set both, or neither")
        if not (self.basic_auth_user + password).isascii():
            return ("BASIC_AUTH_USER and BASIC_AUTH_PASS must be ASCII: clients encode other characters differently "
                    "(Label Studio sends Latin-1), and the backend would refuse them")
        return None

    def startup_problems(self) -> list[str]:
        """What stops this backend from starting as configured, one sentence each: found before the
        server starts, rather than as a traceback or at the first task."""
        problems = [problem for problem in [self.exposure_problem(), self.credentials_problem()] if problem]
        try:
            torch.empty(0, device=self.device)
        except (RuntimeError, AssertionError) as exc:  # AssertionError: a torch built without CUDA
            problems.append(f"DEVICE={self.device} cannot be used here: {_first_line(exc)}")
        try:
            self.model_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.model_dir):
                pass
        except OSError as exc:
            problems.append(f"MODEL_DIR={self.model_dir} is not a folder this backend can write to: {exc}")
        if self.project_params_file is not None:
            problems.extend(params_file_problems(self.project_params_file))
        return problems

    @property
    def api_key(self) -> str | None:
        return self.label_studio_api_key.get_secret_value() if self.label_studio_api_key else None

    @property
    def ledger_path(self) -> Path:
        return self.model_dir / "ledger.sqlite"

    @property
    def chroma_path(self) -> Path:
        return self.model_dir / "chroma"

    @classmethod
    def from_env(cls, **overrides) -> "ServiceSettings":
        """The settings, or SettingsError naming each environment variable whose value is refused."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise SettingsError([_refusal(error) for error in exc.errors()]) from None


class SettingsError(ValueError):
    """Environment variables whose values are refused, one line each ("PORT='abc': ...")."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def _refusal(error: dict) -> str:
    name = str(error["loc"][0]).upper() if error.get("loc") else "settings"
    reason = str(error["msg"]).removeprefix("Value error, ")
    return f"{name}={error['input']!r}: {reason}" if isinstance(error.get("input"), str) else f"{name}: {reason}"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a name, or "" / "0.0.0.0"-like wildcards: assume reachable
