"""One exception tree for the backend; each error knows the HTTP status it maps to."""

from __future__ import annotations


class BackendError(Exception):
    """Base class. `http_status` and `code` let the service answer without a traceback."""

    http_status = 500
    code = "backend_error"


class BadRequestError(BackendError):
    http_status = 400
    code = "bad_request"


class ConfigError(BackendError):
    """The project's label config or parameters cannot drive the loop."""

    http_status = 422
    code = "bad_config"


class BadRatingError(BackendError):
    """An annotation value that cannot be read as a rating (NaN, wrong type, unknown choice)."""

    http_status = 422
    code = "bad_rating"


class MediaError(BackendError):
    """A task's image or text cannot be fetched or decoded. `transient` errors are worth a retry."""

    http_status = 422
    code = "bad_media"

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


class ImageError(MediaError):
    """A task's image cannot be fetched or decoded (also raised by every fetch, text files included)."""

    code = "bad_image"


class TextError(MediaError):
    """A task's text is missing, empty or not readable as text."""

    code = "bad_text"


class UrlNotAllowedError(ImageError):
    """The image URL points somewhere the backend must not fetch from."""

    code = "url_not_allowed"


class NotFittedError(BackendError):
    """No head yet: no prompt and no ratings."""

    http_status = 409
    code = "not_fitted"


class UnknownProjectError(BackendError):
    http_status = 404
    code = "unknown_project"


class ModelUnavailableError(BackendError):
    """An embedding model cannot be loaded (not downloaded, no internet, wrong path, missing package)."""

    http_status = 503
    code = "model_unavailable"


class StaleVectorsError(BackendError):
    """Vectors of a model the project's store no longer holds (its model changed while they were made)."""

    http_status = 409
    code = "stale_vectors"


class LedgerCorruptError(BackendError):
    """The ledger's SQLite file is damaged: nothing can be trusted or written until it is replaced."""

    http_status = 503
    code = "ledger_corrupt"


class RemoteUnavailable(BackendError):
    """The service the loop reports to (Label Studio) did not answer, or answered 5xx or 429: retry with
    backoff, and not before `retry_after_s` when it said how long to wait (Retry-After)."""

    http_status = 503
    code = "remote_unavailable"

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RemoteRejected(BackendError):
    """That service answered 4xx: our picture of the project may be stale. `status_code` is its answer."""

    http_status = 502
    code = "remote_rejected"

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code
