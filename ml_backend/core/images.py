"""Getting a task's image as a decoded RGB picture, safely.

Image URLs come from task data, which anyone who can import tasks controls. So the
fetcher only talks to trusted origins (Label Studio) and allow-listed hosts, refuses
private, loopback and link-local addresses (redirects included), bounds size and time,
and refuses images whose pixel count could exhaust memory.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import io
import ipaddress
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

import requests
from PIL import Image, UnidentifiedImageError

from .errors import ImageError, UrlNotAllowedError

REDIRECT_CODES = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class FetchPolicy:
    """Where images may come from and how much of them.

    trusted_origins : "scheme://host:port" prefixes fetched whatever their address
        (Label Studio itself, typically on loopback); only these get auth headers.
    allowed_hosts : host name patterns ("images.example.com", "*.example.com", "*" for
        any public host) and CIDR blocks ("10.1.0.0/16") that may be fetched; names must
        resolve to public addresses unless they fall in an allowed CIDR block.
    """

    trusted_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    max_bytes: int = 20 * 2**20
    timeout_s: float = 10.0
    max_redirects: int = 3
    max_pixels: int = 40_000_000
    _networks: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        networks, patterns = [], []
        for entry in self.allowed_hosts:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                patterns.append(entry.lower())
        object.__setattr__(self, "_networks", tuple(networks))
        object.__setattr__(self, "allowed_hosts", tuple(patterns) + tuple(str(n) for n in networks))
        object.__setattr__(self, "trusted_origins", tuple(_origin(o) for o in self.trusted_origins if o))

    def is_trusted(self, url: str) -> bool:
        return _origin(url) in self.trusted_origins

    def check(self, url: str) -> None:
        """Raise `UrlNotAllowedError` unless `url` may be fetched under this policy."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise UrlNotAllowedError(f"unsupported URL scheme {parts.scheme or '(none)'!r}")
        if self.is_trusted(url):
            return
        host = (parts.hostname or "").lower()
        if not host:
            raise UrlNotAllowedError("URL has no host")
        literal = _ip_or_none(host)
        if literal is not None and self._in_allowed_network(literal):
            return
        if not any(fnmatch.fnmatchcase(host, pattern) for pattern in self.allowed_hosts if "/" not in pattern):
            raise UrlNotAllowedError(f"host {host!r} is not Label Studio and not in the image host allow-list")
        for address in _resolve(host, parts.port or (443 if parts.scheme == "https" else 80)):
            if not (address.is_global or self._in_allowed_network(address)):
                raise UrlNotAllowedError(f"host {host!r} resolves to non-public address {address}")

    def _in_allowed_network(self, address) -> bool:
        return any(address in network for network in self._networks)


class ImageFetcher:
    """Fetches image bytes from data: URIs and http(s) URLs under a `FetchPolicy`."""

    def __init__(self, policy: FetchPolicy, session: requests.Session | None = None):
        self.policy = policy
        self._session = session or requests.Session()

    def fetch(self, url: str, headers: dict[str, str] | None = None) -> bytes:
        """Bytes behind `url`. `headers` (e.g. Label Studio auth) are sent to trusted origins only."""
        if url.startswith("data:"):
            return decode_data_uri(url, self.policy.max_bytes)
        deadline = time.monotonic() + self.policy.timeout_s
        for _ in range(self.policy.max_redirects + 1):
            self.policy.check(url)
            send = headers if headers and self.policy.is_trusted(url) else None
            response = self._get(url, send, deadline)
            if response.status_code in REDIRECT_CODES and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                response.close()
                continue
            return self._read_body(response, url, deadline)
        raise ImageError(f"too many redirects (more than {self.policy.max_redirects})")

    def _get(self, url: str, headers: dict[str, str] | None, deadline: float) -> requests.Response:
        remaining = max(deadline - time.monotonic(), 0.1)
        try:
            response = self._session.get(url, headers=headers, stream=True, allow_redirects=False, timeout=(min(remaining, 5.0), remaining))
        except requests.Timeout:
            raise ImageError(f"timed out fetching {_redact(url)}", transient=True) from None
        except requests.RequestException as exc:
            raise ImageError(f"cannot fetch {_redact(url)}: {type(exc).__name__}", transient=True) from None
        if response.status_code >= 400:
            response.close()
            transient = response.status_code >= 500 or response.status_code == 429
            raise ImageError(f"HTTP {response.status_code} fetching {_redact(url)}", transient=transient)
        return response

    def _read_body(self, response: requests.Response, url: str, deadline: float) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.policy.max_bytes:
            response.close()
            raise ImageError(f"image at {_redact(url)} is {declared} bytes, limit {self.policy.max_bytes}")
        body = bytearray()
        try:
            for chunk in response.iter_content(64 * 1024):
                body += chunk
                if len(body) > self.policy.max_bytes:
                    raise ImageError(f"image at {_redact(url)} exceeds {self.policy.max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise ImageError(f"timed out reading {_redact(url)}", transient=True)
        except requests.RequestException as exc:
            raise ImageError(f"connection broke reading {_redact(url)}: {type(exc).__name__}", transient=True) from None
        finally:
            response.close()
        return bytes(body)


def decode_data_uri(uri: str, max_bytes: int) -> bytes:
    """Payload of a `data:[<type>][;base64],<data>` URI."""
    header, sep, payload = uri.partition(",")
    if not sep:
        raise ImageError("malformed data: URI (no comma)")
    if len(payload) > max_bytes * 4 // 3 + 4:
        raise ImageError(f"data: URI exceeds {max_bytes} bytes")
    if header.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ImageError("malformed data: URI (bad base64)") from None
    return unquote_to_bytes(payload)


def read_local_file(root: str | Path, relative: str, max_bytes: int) -> bytes:
    """Bytes of `relative` under `root`; refuses paths that escape the root."""
    base = Path(root).resolve()
    path = (base / relative.lstrip("/")).resolve()
    if not path.is_relative_to(base):
        raise UrlNotAllowedError(f"path {relative!r} escapes the local files root")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageError(f"file {relative!r} is {size} bytes, limit {max_bytes}")
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read local file {relative!r}: {exc.strerror}") from None


def decode_image(data: bytes, max_pixels: int = 40_000_000) -> Image.Image:
    """Decode bytes to an RGB image, checking the pixel count before decoding anything."""
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > max_pixels:
            raise ImageError(f"image is {width}x{height} pixels, limit {max_pixels}")
        return image.convert("RGB")
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise ImageError("not a readable image") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"corrupt image: {exc}") from None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _ip_or_none(host: str):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _resolve(host: str, port: int) -> list:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        raise ImageError(f"cannot resolve host {host!r}", transient=True) from None
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def _redact(url: str) -> str:
    """The URL without its query string, which may carry tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else "(url)"
