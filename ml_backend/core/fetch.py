"""Getting the bytes a task's reference points at (an image, or a text file), safely.

The URLs come from task data, which anyone who can import tasks controls. So the
fetcher only talks to trusted origins (Label Studio) and allow-listed hosts, refuses
private, loopback and link-local addresses (redirects included), and bounds size and
time (`core.images` then bounds what decoding the bytes may cost). Three rules keep what
is checked and what is fetched the same:

- **One parse.** A URL is parsed once (`parse_fetch_url`), strictly: whatever two URL
  parsers could read differently (backslashes, userinfo, control characters, %-escaped,
  non-ASCII or numeric-shorthand hosts) is refused, and the request goes to the URL
  rebuilt from the checked parts. Every connection then checks that it goes to exactly
  the checked host and port, and refuses to send an Authorization header unless that
  host and port are Label Studio's.
- **The address connected to.** A name can resolve to a public address for the check and
  to 127.0.0.1 for the connection (DNS rebinding), so every connection checks the address
  its socket is actually connected to, before a byte of the request is sent.
- **One deadline.** Socket timeouts bound each read, not their sum: headers dripped a byte
  a second never trip them. So one deadline covers connect, headers, body and every
  redirect, and when it passes the fetch's sockets are shut down, which ends any read.
  (Name resolution is left to the system resolver's own timeouts.)
"""

from __future__ import annotations

import base64
import contextvars
import fnmatch
import ipaddress
import os
import re
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Union
from urllib.parse import unquote_to_bytes, urljoin

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.poolmanager import PoolManager

from .errors import BackendError, ImageError, UrlNotAllowedError

REDIRECT_CODES = {301, 302, 303, 307, 308}
READ_CHUNK = 64 * 1024
MAX_URL_LENGTH = 8192
DEFAULT_PORTS = {"http": 80, "https": 443}

# Headers for a fetch, or a function giving them (called only when the URL is trusted,
# so an image from elsewhere never waits on, or fails with, Label Studio's token refresh).
Headers = Union[Mapping[str, str], Callable[[], Mapping[str, str]], None]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
# All an authority may hold: a host (name, dotted IPv4 or bracketed IPv6) and a port.
_AUTHORITY = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>[0-9]+))?")
# Labels inet_aton reads as numbers (0x7f, 0177, 2130706433): "0x7f.1" is 127.0.0.1 to a resolver.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
# IPv6 prefixes whose last 32 bits are an IPv4 address the packets go to (NAT64, RFC 6052 / 8215).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


@dataclass(frozen=True)
class FetchTarget:
    """A URL as the fetcher checked it: connect to `host`:`port`, ask for `target`."""

    scheme: str
    host: str    # lower-case name, dotted-quad IPv4, or compressed IPv6 without brackets
    port: int
    target: str  # path and query ("/" when empty); the fragment is dropped

    @property
    def origin(self) -> str:
        return _origin(self.scheme, self.host, self.port)

    @property
    def url(self) -> str:
        """The URL the request is made to, rebuilt from the checked parts."""
        port = "" if self.port == DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://{_bracketed(self.host)}{port}{self.target}"

    @property
    def shown(self) -> str:
        """For messages: without the query string, which may carry tokens."""
        return f"{self.origin}{self.target.split('?', 1)[0]}"


def parse_fetch_url(url: str) -> FetchTarget:
    """Parse an http(s) URL to fetch, refusing whatever URL parsers could read differently.

    Raises `UrlNotAllowedError` saying what is wrong.
    """
    if not isinstance(url, str) or not url:
        raise UrlNotAllowedError("empty URL")
    if len(url) > MAX_URL_LENGTH:
        raise UrlNotAllowedError(f"URL is {len(url)} characters long, limit {MAX_URL_LENGTH}")
    if "\\" in url:
        raise UrlNotAllowedError("URL contains a backslash, which URL parsers read differently: write it as %5C")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise UrlNotAllowedError("URL contains control characters (tab, newline, ...): percent-encode them")
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:  # JSON lets "\ud800" through; no URL holds one, and no message may repeat it
        raise UrlNotAllowedError("URL holds an unpaired surrogate (not valid Unicode)") from None
    scheme_match = _SCHEME.match(url)
    scheme = scheme_match.group(1).lower() if scheme_match else ""
    if scheme not in DEFAULT_PORTS:
        raise UrlNotAllowedError(f"unsupported URL scheme {scheme or '(none)'!r}")
    rest = url[scheme_match.end():]
    if not rest.startswith("//"):
        raise UrlNotAllowedError(f"malformed URL: '{scheme}:' must be followed by '//host'")
    rest = rest[2:]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, target = rest[:end], rest[end:].split("#", 1)[0]
    if not authority:
        raise UrlNotAllowedError("URL has no host")
    match = _AUTHORITY.fullmatch(authority)
    if match is None:
        raise UrlNotAllowedError(
            f"URL authority {authority[:100]!r} is not host[:port] "
            "(userinfo, spaces, %-escapes and non-ASCII host names are refused)")
    host = _canonical_host(match.group("host"))
    port = _port(match.group("port"), scheme)
    if target.startswith("?") or not target:
        target = "/" + target
    return FetchTarget(scheme, host, port, target)


@dataclass(frozen=True)
class FetchPolicy:
    """Where images may come from and how much of them.

    trusted_origins : "scheme://host:port" prefixes fetched whatever their address
        (Label Studio itself, typically on loopback); only these get auth headers.
    allowed_hosts : host name patterns ("images.example.com", "*.example.com", "*" for
        any public host) and CIDR blocks ("10.1.0.0/16") that may be fetched; names must
        resolve to public addresses unless they fall in an allowed CIDR block.
    allow_list_setting : where an operator extends `allowed_hosts` (e.g. "IMAGE_HOSTS"), named in
        the refusal of a host that is not on it.
    """

    trusted_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    allow_list_setting: str = ""
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
        origins = []
        for origin in self.trusted_origins:
            try:
                origins.append(parse_fetch_url(origin).origin)
            except (UrlNotAllowedError, TypeError):
                continue  # a malformed trusted origin trusts nothing
        object.__setattr__(self, "trusted_origins", tuple(origins))

    def is_trusted(self, url: str | FetchTarget) -> bool:
        try:
            target = url if isinstance(url, FetchTarget) else parse_fetch_url(url)
        except UrlNotAllowedError:
            return False
        return target.origin in self.trusted_origins

    def is_trusted_origin(self, scheme: str, host: str, port: int) -> bool:
        """Whether a connection to host:port over `scheme` goes to a trusted origin."""
        return _origin(scheme, _normal_host(host), port) in self.trusted_origins

    def check(self, url: str | FetchTarget) -> FetchTarget:
        """The parsed URL, if it may be fetched under this policy; else `UrlNotAllowedError`.

        Resolving the name here gives a clear early error; the address actually
        connected to is checked again by `check_peer` (DNS may answer differently).
        """
        target = url if isinstance(url, FetchTarget) else parse_fetch_url(url)
        if self.is_trusted(target):
            return target
        literal = _ip_or_none(target.host)
        if literal is not None and self._in_allowed_network(literal):
            return target
        if not any(fnmatch.fnmatchcase(target.host, p) for p in self.allowed_hosts if "/" not in p):
            where = f" ({self.allow_list_setting}: add it there to allow it)" if self.allow_list_setting else ""
            raise UrlNotAllowedError(f"host {target.host!r} is not Label Studio and not in the image host allow-list{where}")
        for address in [literal] if literal is not None else _resolve(target.host, target.port):
            if not self._address_allowed(address):
                raise UrlNotAllowedError(f"host {target.host!r} resolves to non-public address {address}")
        return target

    def check_peer(self, scheme: str, host: str, port: int, address: str) -> None:
        """Raise `UrlNotAllowedError` unless a connection to host:port may be connected to `address`."""
        if self.is_trusted_origin(scheme, host, port):
            return
        peer = _ip_or_none(address.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
        if peer is None or not self._address_allowed(peer):
            raise UrlNotAllowedError(f"host {host!r} connected to non-public address {address}: refused")

    def _address_allowed(self, address) -> bool:
        if self._in_allowed_network(address):
            return True
        # An IPv6 address that carries an IPv4 one (NAT64, 6to4, ...) reaches that IPv4
        # address; Python 3.11 calls most of these forms global whatever they carry.
        carried = _embedded_ipv4(address)
        if carried:
            return all(a.is_global or self._in_allowed_network(a) for a in carried)
        return address.is_global

    def _in_allowed_network(self, address) -> bool:
        return any(a in network for a in (address, *_embedded_ipv4(address)) for network in self._networks)


class Deadline:
    """One time limit over everything a fetch does.

    `guard(sock)` registers a connected socket; when the time is up they are all shut
    down, so a read blocked on one returns at once, whatever a server is dripping.
    """

    def __init__(self, seconds: float):
        self.at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer: threading.Timer | None = None
        self._fired = False

    def remaining(self) -> float:
        return self.at - time.monotonic()

    @property
    def passed(self) -> bool:
        return self._fired or time.monotonic() >= self.at

    def guard(self, sock: socket.socket) -> None:
        # A duplicate descriptor: TLS wrapping detaches `sock` (and TLS sockets cannot dup()),
        # and the duplicate keeps the socket's number from being reused before close().
        duplicate = socket.socket(fileno=os.dup(sock.fileno()))
        with self._lock:
            self._sockets.append(duplicate)
            if self._timer is None:
                self._timer = threading.Timer(max(self.remaining(), 0.0), self._expire)
                self._timer.daemon = True
                self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            self._fired = True
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


@dataclass(frozen=True)
class _Fetch:
    """What the connections opened during one request must honour."""

    target: FetchTarget
    deadline: Deadline


_current_fetch: contextvars.ContextVar[_Fetch | None] = contextvars.ContextVar("image_fetch", default=None)


class ImageFetcher:
    """Fetches the bytes of an image (or a text file) from data: URIs and http(s) URLs under a `FetchPolicy`.

    The session gets a `PeerCheckingAdapter` for http and https, and ignores proxy
    settings from the environment (a proxy would hide the address really fetched from).
    """

    def __init__(self, policy: FetchPolicy, session: requests.Session | None = None):
        self.policy = policy
        self._session = session or requests.Session()
        self._session.trust_env = False
        adapter = PeerCheckingAdapter(policy)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def fetch(self, url: str, headers: Headers = None) -> bytes:
        """Bytes behind `url`. `headers` (e.g. Label Studio auth) are sent to trusted origins only."""
        if is_data_uri(url):
            return decode_data_uri(url, self.policy.max_bytes)
        deadline = Deadline(self.policy.timeout_s)
        try:
            return self._fetch(url, headers, deadline)
        finally:
            deadline.close()

    def _fetch(self, url: str, headers: Headers, deadline: Deadline) -> bytes:
        trusted_so_far = True
        for _ in range(self.policy.max_redirects + 1):
            target = self.policy.check(url)
            send = {"Accept-Encoding": "identity"}  # no gzip: the size limit counts bytes as received
            # Credentials only while every hop was Label Studio: an outside host that
            # redirects to Label Studio must not get the backend to fetch with its token.
            trusted_so_far = trusted_so_far and self.policy.is_trusted(target)
            if headers and trusted_so_far:
                send.update(_resolve_headers(headers))
            response = self._get(target, send, deadline)
            if response.status_code in REDIRECT_CODES and "location" in response.headers:
                url = urljoin(target.url, response.headers["location"])
                response.close()
                continue
            return self._read_body(response, target, deadline)
        raise ImageError(f"too many redirects (more than {self.policy.max_redirects})")

    def _get(self, target: FetchTarget, headers: dict[str, str], deadline: Deadline) -> requests.Response:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise ImageError(f"timed out fetching {target.shown}", transient=True)
        context = _current_fetch.set(_Fetch(target, deadline))
        try:
            response = self._session.get(target.url, headers=headers, stream=True, allow_redirects=False,
                                         timeout=(min(remaining, 5.0), remaining))
        except requests.Timeout:
            raise ImageError(f"timed out fetching {target.shown}", transient=True) from None
        except requests.RequestException as exc:
            if deadline.passed:
                raise ImageError(f"timed out fetching {target.shown}", transient=True) from None
            raise ImageError(f"cannot fetch {target.shown}: {type(exc).__name__}", transient=True) from None
        except UnicodeDecodeError:  # requests reads a redirect's Location as UTF-8, and raises this
            raise ImageError(f"{target.shown} answered a redirect whose Location is not valid UTF-8") from None
        finally:
            _current_fetch.reset(context)
        if response.status_code >= 400:
            response.close()
            transient = response.status_code >= 500 or response.status_code == 429
            raise ImageError(f"HTTP {response.status_code} fetching {target.shown}", transient=transient)
        return response

    def _read_body(self, response: requests.Response, target: FetchTarget, deadline: Deadline) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.policy.max_bytes:
            response.close()
            raise ImageError(f"file at {target.shown} is {declared} bytes, limit {self.policy.max_bytes}")
        body = bytearray()
        try:
            while not deadline.passed:
                chunk = response.raw.read1(READ_CHUNK, decode_content=False)
                if not chunk:
                    break
                body += chunk
                if len(body) > self.policy.max_bytes:
                    raise ImageError(f"file at {target.shown} exceeds {self.policy.max_bytes} bytes")
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            if deadline.passed or isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                raise ImageError(f"timed out reading {target.shown}", transient=True) from None
            raise ImageError(f"connection broke reading {target.shown}: {type(exc).__name__}", transient=True) from None
        finally:
            response.close()
        # The deadline shuts the socket down, which can look like a body that simply ended.
        if deadline.passed:
            raise ImageError(f"timed out reading {target.shown}", transient=True)
        return _content_decoded(bytes(body), response.headers.get("content-encoding", ""), target,
                                self.policy.max_bytes)


class PeerCheckingAdapter(HTTPAdapter):
    """A requests adapter whose connections enforce a `FetchPolicy` themselves.

    Before sending anything, each connection checks the address its socket actually
    connected to (`policy.check_peer`), that it goes to the host and port the fetch
    checked, and that an Authorization header goes to a trusted origin only; it also
    puts its socket under the fetch's deadline. Violations raise `UrlNotAllowedError`
    out of `session.get`.
    """

    def __init__(self, policy: FetchPolicy, **kwargs):
        self._policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs) -> None:
        self._pool_connections, self._pool_maxsize, self._pool_block = connections, maxsize, block
        self.poolmanager = _GuardedPoolManager(
            self._policy, num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        raise UrlNotAllowedError("image fetches do not go through proxies")


class _GuardedPoolManager(PoolManager):
    def __init__(self, policy: FetchPolicy, **kwargs):
        self._policy = policy
        super().__init__(**kwargs)

    def _new_pool(self, scheme, host, port, request_context=None):
        # urllib3 documents _new_pool as the place to customise the pools it creates.
        pool = super()._new_pool(scheme, host, port, request_context)
        pool.ConnectionCls = _GuardedHTTPSConnection if scheme == "https" else _GuardedHTTPConnection
        pool.conn_kw = {**pool.conn_kw, "policy": self._policy}
        return pool


class _GuardedConnectionMixin:
    url_scheme = "http"

    def __init__(self, *args, policy: FetchPolicy, **kwargs):
        super().__init__(*args, **kwargs)
        self._policy = policy

    def _new_conn(self):
        fetch = _current_fetch.get()
        self._check_target(fetch)
        # The socket is connected but nothing is sent yet (no request, no TLS hello).
        sock = super()._new_conn()
        try:
            self._policy.check_peer(self.url_scheme, self.host, self.port, sock.getpeername()[0])
            self._guard(fetch, sock)
        except BaseException:
            sock.close()
            raise
        return sock

    def request(self, method, url, body=None, headers=None, **kwargs):
        fetch = _current_fetch.get()
        self._check_target(fetch)
        if self.sock is not None:  # a kept-alive connection from an earlier fetch: under this fetch's deadline now
            self._guard(fetch, self.sock)
        if any(name.lower() == "authorization" for name in headers or {}) and not self._policy.is_trusted_origin(
                self.url_scheme, self.host, self.port):
            raise UrlNotAllowedError(f"refused to send credentials to {self.host}:{self.port}: not Label Studio")
        return super().request(method, url, body=body, headers=headers, **kwargs)

    def _guard(self, fetch: _Fetch | None, sock: socket.socket) -> None:
        if fetch is not None and getattr(self, "_deadline", None) is not fetch.deadline:
            fetch.deadline.guard(sock)
            self._deadline = fetch.deadline

    def _check_target(self, fetch: _Fetch | None) -> None:
        if fetch is None:
            return
        expected = fetch.target
        if (self.url_scheme, _normal_host(self.host), self.port) != (expected.scheme, expected.host, expected.port):
            raise UrlNotAllowedError(
                f"connection to {self.url_scheme}://{self.host}:{self.port} is not the checked {expected.origin}: refused")


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    url_scheme = "http"


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    url_scheme = "https"


def is_data_uri(ref: str) -> bool:
    """Whether `ref` is a data: URI (the scheme is case-insensitive, as browsers read it)."""
    return ref[:5].lower() == "data:"


def decode_data_uri(uri: str, max_bytes: int) -> bytes:
    """Payload of a `data:[<type>][;base64],<data>` URI, read the way browsers read it (WHATWG's data:
    URL processor): the fragment dropped, the payload %-decoded, ";base64" in any case, and base64 with
    line breaks or without its padding accepted. An annotator sees such an image; the backend must read it too."""
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise ImageError("malformed data: URI (no comma)")
    if len(payload) > 3 * max_bytes + 4:  # a cheap bound first: no byte takes more than 3 characters ("%41")
        raise ImageError(f"data: URI exceeds {max_bytes} bytes")
    try:
        body = unquote_to_bytes(payload.partition("#")[0])
    except UnicodeEncodeError:  # JSON lets a lone surrogate ("\ud800") through; no URL holds one
        raise ImageError("malformed data: URI (it holds an unpaired surrogate, not valid Unicode)") from None
    if _BASE64_PARAMETER.search(header.strip(_ASCII_WHITESPACE)):
        body = _forgiving_base64(body)
    if len(body) > max_bytes:
        raise ImageError(f"data: URI exceeds {max_bytes} bytes")
    return body


_ASCII_WHITESPACE = " \t\n\f\r"  # WHATWG's; not Python's wider str.strip() set
# WHATWG: ";", then spaces only, then "base64" in any case, at the end of the stripped media type.
_BASE64_PARAMETER = re.compile(r";[ ]*base64$", re.IGNORECASE)
_BASE64_ALPHABET = re.compile(rb"[A-Za-z0-9+/]*")


def _forgiving_base64(data: bytes) -> bytes:
    """WHATWG's forgiving-base64 decode: whitespace dropped, padding optional, anything else refused."""
    data = data.translate(None, _ASCII_WHITESPACE.encode())
    if len(data) % 4 == 0:
        data = data[:-2] if data.endswith(b"==") else data[:-1] if data.endswith(b"=") else data
    if not _BASE64_ALPHABET.fullmatch(data):  # checked first: naming the character says more than the length
        bad = _BASE64_ALPHABET.match(data).end()
        raise ImageError(f"malformed data: URI (bad base64: {chr(data[bad])!r} at position {bad} "
                         "is not a base64 character)")
    if len(data) % 4 == 1:
        raise ImageError("malformed data: URI (bad base64: its length leaves one character over)")
    return base64.b64decode(data + b"=" * (-len(data) % 4))


# Content-Encodings the fetcher inflates itself: it asks for none (`Accept-Encoding: identity`), but
# some servers compress anyway, and a browser would show the image. zlib reads gzip and zlib headers.
_INFLATABLE = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS | 32}
# Compressions it cannot read. Any other coding ("utf-8" from a misconfigured bucket, "none") is taken to
# mean the body as it is, as browsers take it.
_UNREADABLE = {"br", "zstd", "compress", "x-compress"}


def _content_decoded(body: bytes, encoding: str, target: FetchTarget, max_bytes: int) -> bytes:
    """The body as the server meant it: each coding of its Content-Encoding undone, last applied first
    ("gzip, gzip" twice), never inflated past max_bytes (a few KB of gzip can inflate to gigabytes)."""
    for coding in reversed([c.strip().lower() for c in encoding.split(",")]):
        if coding in _UNREADABLE:
            raise ImageError(f"{target.shown} sent its content {coding!r}-compressed, which the backend does not read")
        if coding in _INFLATABLE and body:
            body = _inflated(body, coding, target, max_bytes)
    return body


def _inflated(body: bytes, coding: str, target: FetchTarget, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(_INFLATABLE[coding])
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error:
        if coding != "deflate":
            raise ImageError(f"{target.shown} sent a corrupt {coding} body") from None
        try:  # "deflate" without its zlib header, as some servers send it
            data = zlib.decompressobj(-zlib.MAX_WBITS).decompress(body, max_bytes + 1)
        except zlib.error:
            raise ImageError(f"{target.shown} sent a corrupt deflate body") from None
    if len(data) > max_bytes:
        raise ImageError(f"file at {target.shown} inflates ({coding}) to more than {max_bytes} bytes")
    # A stream that stops short of its end (a missing gzip trailer, say) keeps what it holds, as browsers
    # keep it: the decoder then says whether that is a whole image.
    return data


def read_local_file(root: str | Path, relative: str, max_bytes: int) -> bytes:
    """Bytes of `relative` under `root`; refuses paths that escape the root."""
    if "\x00" in relative:
        raise ImageError(f"local file path {relative!r} contains a NUL byte")
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from the task's JSON: no file system path holds one
        raise ImageError(f"local file path {relative!r} holds an unpaired surrogate (not valid Unicode)") from None
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


def _canonical_host(host: str) -> str:
    if host.startswith("["):
        try:
            return ipaddress.IPv6Address(host[1:-1]).compressed
        except ValueError:
            raise UrlNotAllowedError(f"malformed IPv6 address {host!r}") from None
    host = host.lower()
    labels = host.split(".")
    if not all(labels):
        raise UrlNotAllowedError(f"host {host!r} has an empty label (a doubled or trailing dot)")
    if all(_NUMERIC_LABEL.fullmatch(label) for label in labels):
        try:
            ipaddress.IPv4Address(host)  # only the plain dotted quad, no leading zeros
        except ValueError:
            raise UrlNotAllowedError(
                f"host {host!r} is a numeric shorthand for an address (hex, octal or fewer than 4 parts): "
                "write the address as a dotted quad") from None
    return host


def _port(text: str | None, scheme: str) -> int:
    if text is None:
        return DEFAULT_PORTS[scheme]
    if len(text) > 5 or (len(text) > 1 and text[0] == "0") or not 0 < int(text) < 65536:
        raise UrlNotAllowedError(f"malformed URL: port {text!r} must be a number 1-65535 without leading zeros")
    return int(text)


def _normal_host(host: str) -> str:
    """A host as a connection names it, in `parse_fetch_url`'s form (lower case, IPv6 compressed, no brackets)."""
    host = host.strip("[]").lower()
    address = _ip_or_none(host)
    return address.compressed if address is not None else host


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _origin(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://{_bracketed(host)}:{port}"


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


def _embedded_ipv4(address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: a connection to it reaches them.

    IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), IPv4-translated
    (::ffff:0:a.b.c.d), NAT64 (64:ff9b::a.b.c.d), 6to4 (2002:AABB:CCDD::) and Teredo.
    """
    if address.version != 6:
        return []
    value = int(address)
    low32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    carried = []
    if address.ipv4_mapped is not None:
        carried.append(address.ipv4_mapped)
    if value >> 32 == 0 and value > 1 or value >> 32 == 0xFFFF0000 or any(address in net for net in _NAT64):
        carried.append(low32)
    if address.sixtofour is not None:
        carried.append(address.sixtofour)
    if address.teredo is not None:
        carried.extend(address.teredo)
    return carried


def _resolve(host: str, port: int) -> list:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        raise ImageError(f"cannot resolve host {host!r}", transient=True) from None
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
