"""Getting a task's image as a decoded RGB picture, safely.

Image URLs come from task data, which anyone who can import tasks controls. So the
fetcher only talks to trusted origins (Label Studio) and allow-listed hosts, refuses
private, loopback and link-local addresses (redirects included), bounds size and time,
and refuses images whose pixel count could exhaust memory.

Checking a host name before the request is not enough: the name can resolve to a
public address for the check and to 127.0.0.1 for the connection (DNS rebinding).
So every connection the fetcher opens checks the address its socket is actually
connected to, before a byte of the request is sent (`PeerCheckingAdapter`).
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
from typing import Callable, Mapping, Union
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

import requests
import urllib3
from PIL import Image, UnidentifiedImageError
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.poolmanager import PoolManager

from .errors import BackendError, ImageError, UrlNotAllowedError

REDIRECT_CODES = {301, 302, 303, 307, 308}
READ_CHUNK = 64 * 1024

# Headers for a fetch, or a function giving them (called only when the URL is trusted,
# so an image from elsewhere never waits on, or fails with, Label Studio's token refresh).
Headers = Union[Mapping[str, str], Callable[[], Mapping[str, str]], None]


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
        origins = (_origin(o) for o in self.trusted_origins if o)
        object.__setattr__(self, "trusted_origins", tuple(o for o in origins if o is not None))

    def is_trusted(self, url: str) -> bool:
        origin = _origin(url)
        return origin is not None and origin in self.trusted_origins

    def check(self, url: str) -> None:
        """Raise `UrlNotAllowedError` unless `url` may be fetched under this policy.

        Resolving the name here gives a clear early error; the address actually
        connected to is checked again by `check_peer` (DNS may answer differently).
        """
        scheme, host, port = _split(url)
        if scheme not in ("http", "https"):
            raise UrlNotAllowedError(f"unsupported URL scheme {scheme or '(none)'!r}")
        if self.is_trusted(url):
            return
        if not host:
            raise UrlNotAllowedError("URL has no host")
        literal = _ip_or_none(host)
        if literal is not None and self._in_allowed_network(literal):
            return
        if not any(fnmatch.fnmatchcase(host, pattern) for pattern in self.allowed_hosts if "/" not in pattern):
            raise UrlNotAllowedError(f"host {host!r} is not Label Studio and not in the image host allow-list")
        for address in _resolve(host, port):
            if not self._address_allowed(address):
                raise UrlNotAllowedError(f"host {host!r} resolves to non-public address {address}")

    def check_peer(self, scheme: str, host: str, port: int, address: str) -> None:
        """Raise `UrlNotAllowedError` unless a connection to host:port may be connected to `address`."""
        if f"{scheme}://{host.lower().strip('[]')}:{port}" in self.trusted_origins:
            return
        peer = _ip_or_none(address.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
        if peer is None or not self._address_allowed(peer):
            raise UrlNotAllowedError(f"host {host!r} connected to non-public address {address}: refused")

    def _address_allowed(self, address) -> bool:
        address = _unmapped(address)
        return address.is_global or self._in_allowed_network(address)

    def _in_allowed_network(self, address) -> bool:
        address = _unmapped(address)
        return any(address in network for network in self._networks)


class ImageFetcher:
    """Fetches image bytes from data: URIs and http(s) URLs under a `FetchPolicy`.

    The session gets a `PeerCheckingAdapter` for http and https, and ignores proxy
    settings from the environment (a proxy would hide the address really fetched from).
    """

    def __init__(self, policy: FetchPolicy, session: requests.Session | None = None):
        self.policy = policy
        self._session = session or requests.Session()
        self._session.trust_env = False
        adapter = PeerCheckingAdapter(policy.check_peer)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def fetch(self, url: str, headers: Headers = None) -> bytes:
        """Bytes behind `url`. `headers` (e.g. Label Studio auth) are sent to trusted origins only."""
        if url.startswith("data:"):
            return decode_data_uri(url, self.policy.max_bytes)
        deadline = time.monotonic() + self.policy.timeout_s
        trusted_so_far = True
        for _ in range(self.policy.max_redirects + 1):
            self.policy.check(url)
            send = {"Accept-Encoding": "identity"}  # no gzip: the size limit counts bytes as received
            # Credentials only while every hop was Label Studio: an outside host that
            # redirects to Label Studio must not get the backend to fetch with its token.
            trusted_so_far = trusted_so_far and self.policy.is_trusted(url)
            if headers and trusted_so_far:
                send.update(_resolve_headers(headers))
            response = self._get(url, send, deadline)
            if response.status_code in REDIRECT_CODES and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                response.close()
                continue
            return self._read_body(response, url, deadline)
        raise ImageError(f"too many redirects (more than {self.policy.max_redirects})")

    def _get(self, url: str, headers: dict[str, str], deadline: float) -> requests.Response:
        remaining = max(deadline - time.monotonic(), 0.1)
        try:
            response = self._session.get(
                url, headers=headers, stream=True, allow_redirects=False, timeout=(min(remaining, 5.0), remaining)
            )
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
            while True:
                # read1 returns whatever one socket read gives, so the deadline is checked
                # even for a body that drips in a byte at a time (each read is bounded by
                # the read timeout, which is the time left at request time).
                chunk = response.raw.read1(READ_CHUNK, decode_content=False)
                if not chunk:
                    break
                body += chunk
                if len(body) > self.policy.max_bytes:
                    raise ImageError(f"image at {_redact(url)} exceeds {self.policy.max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise ImageError(f"timed out reading {_redact(url)}", transient=True)
        except urllib3.exceptions.ReadTimeoutError:
            raise ImageError(f"timed out reading {_redact(url)}", transient=True) from None
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            raise ImageError(f"connection broke reading {_redact(url)}: {type(exc).__name__}", transient=True) from None
        finally:
            response.close()
        return bytes(body)


class PeerCheckingAdapter(HTTPAdapter):
    """A requests adapter whose connections call `check_peer(scheme, host, port, address)`
    with the address the socket actually connected to, before sending anything.

    `check_peer` raises to refuse; the exception propagates out of `session.get`.
    """

    def __init__(self, check_peer: Callable[[str, str, int, str], None], **kwargs):
        self._check_peer = check_peer
        super().__init__(**kwargs)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs) -> None:
        self._pool_connections, self._pool_maxsize, self._pool_block = connections, maxsize, block
        self.poolmanager = _PeerCheckingPoolManager(
            self._check_peer, num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        raise UrlNotAllowedError("image fetches do not go through proxies")


class _PeerCheckingPoolManager(PoolManager):
    def __init__(self, check_peer, **kwargs):
        self._check_peer = check_peer
        super().__init__(**kwargs)

    def _new_pool(self, scheme, host, port, request_context=None):
        # urllib3 documents _new_pool as the place to customise the pools it creates.
        pool = super()._new_pool(scheme, host, port, request_context)
        pool.ConnectionCls = _PeerCheckingHTTPSConnection if scheme == "https" else _PeerCheckingHTTPConnection
        pool.conn_kw = {**pool.conn_kw, "check_peer": self._check_peer}
        return pool


class _PeerCheckingMixin:
    url_scheme = "http"

    def __init__(self, *args, check_peer, **kwargs):
        super().__init__(*args, **kwargs)
        self._check_peer = check_peer

    def _new_conn(self):
        # The socket is connected but nothing is sent yet (no request, no TLS hello).
        sock = super()._new_conn()
        try:
            self._check_peer(self.url_scheme, self.host, self.port, sock.getpeername()[0])
        except BaseException:
            sock.close()
            raise
        return sock


class _PeerCheckingHTTPConnection(_PeerCheckingMixin, HTTPConnection):
    url_scheme = "http"


class _PeerCheckingHTTPSConnection(_PeerCheckingMixin, HTTPSConnection):
    url_scheme = "https"


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
    if "\x00" in relative:
        raise ImageError(f"local file path {relative!r} contains a NUL byte")
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
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image is too large to decode safely ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError("not a readable image") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"corrupt image: {exc}") from None


def _split(url: str) -> tuple[str, str, int]:
    """(scheme, lower-case host, port) of a URL; malformed ones (bad port, broken IPv6) are refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlNotAllowedError(f"malformed URL: {exc}") from None
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)


def _origin(url: str) -> str | None:
    try:
        scheme, host, port = _split(url)
    except UrlNotAllowedError:
        return None
    return f"{scheme}://{host}:{port}"


def _resolve_headers(headers: Headers) -> dict[str, str]:
    try:
        return dict(headers() if callable(headers) else headers or {})
    except BackendError as exc:  # e.g. Label Studio down while a token needs refreshing
        raise ImageError(f"cannot authenticate to Label Studio: {exc}", transient=True) from None


def _ip_or_none(host: str):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _unmapped(address):
    """::ffff:10.0.0.1 is 10.0.0.1: judge IPv4-mapped IPv6 addresses as the IPv4 address they carry."""
    return getattr(address, "ipv4_mapped", None) or address


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
