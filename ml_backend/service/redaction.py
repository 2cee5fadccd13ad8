"""Keep secrets out of logs and error bodies, whatever a library puts in a message.

The code never logs credentials on purpose; this is the second line: a filter on
every log handler that masks the known secrets (Label Studio API key, basic-auth
password, the token /setup sends), anything shaped like an Authorization header
value, and the credentials in a presigned URL's query string (S3, GCS, Azure SAS), in
messages and in formatted tracebacks: our own messages show URLs without their query,
but urllib3, for one, logs the whole URL of a response whose headers it cannot parse.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Iterable

MASK = "[REDACTED]"
# "Token abc...", "Bearer eyJ...", "Basic dXNlcjpwYXNz": the value of an Authorization header.
_AUTH_VALUE = re.compile(r"\b(Token|Bearer|Basic)(\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
# The values of a URL's credential parameters: presigned S3 (X-Amz-*, and the older Signature/AWSAccessKeyId), GCS
# (X-Goog-*, GoogleAccessId), an Azure SAS's sig, and plain tokens.
_QUERY_CREDENTIAL = re.compile(
    r"([?&](?:x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential|signature"
    r"|awsaccesskeyid|googleaccessid|sig|token|access_token)=)[^&#\s'\"<>]+", re.IGNORECASE)
# Secrets shorter than this would mask ordinary words.
MIN_SECRET_LENGTH = 6
LOGGERS = ("",)  # the root logger's handlers: every logger here (ours, waitress', libraries') propagates to them


class SecretRedactor(logging.Filter):
    """A logging filter (install on handlers) and a string scrubber."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def add_secrets(self, secrets: Iterable[str | None]) -> None:
        with self._lock:
            known = set(self._secrets) | {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
            # Longest first, so a secret containing another is masked whole.
            self._secrets = tuple(sorted(known, key=len, reverse=True))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _QUERY_CREDENTIAL.sub(lambda m: f"{m.group(1)}{MASK}", text)
        return _AUTH_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True

    def install(self, logger_names: Iterable[str] = LOGGERS) -> None:
        """Add this filter to every handler of the named loggers (once each)."""
        for name in logger_names:
            for handler in logging.getLogger(name).handlers:
                if self not in handler.filters:
                    handler.addFilter(self)


redactor = SecretRedactor()
