"""Untrusted image URLs cannot reach into the backend's network.

The fetcher talks to Label Studio (a trusted origin, typically on loopback) and to
allow-listed hosts only; loopback, private and link-local addresses are refused
unless allowed, after redirects and after DNS answers (the address actually
connected to is checked); responses are bounded in size and time; the Label Studio
token goes to Label Studio only. Real HTTP servers on loopback play Label Studio and
the image hosts; only DNS is faked, to stage a rebinding attack.
"""

from __future__ import annotations

import socket
import time

import pytest

from ml_backend.adapters.ls_media import TaskImageLoader
from ml_backend.core.errors import ImageError, UrlNotAllowedError
from ml_backend.core.fetch import FetchPolicy, ImageFetcher

from .support import LocalServer, Reply, png_bytes

TOKEN = {"Authorization": "Token ls-secret-token-0001"}


@pytest.fixture
def label_studio_host():
    """A real HTTP server standing in for Label Studio's file serving."""
    host = LocalServer()
    yield host
    host.close()


def fetcher(trusted: str = "http://127.0.0.1:1", allowed: tuple[str, ...] = (), **limits) -> ImageFetcher:
    return ImageFetcher(FetchPolicy(trusted_origins=(trusted,), allowed_hosts=allowed, **limits))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/a.png", "http://localhost:{port}/a.png", "http://[::1]:{port}/a.png",
    "http://0.0.0.0:{port}/a.png", "http://[::ffff:127.0.0.1]:{port}/a.png", "http://2130706433:{port}/a.png",
    "http://10.0.0.5/a.png", "http://172.16.3.4/a.png", "http://192.168.1.1/a.png", "http://100.64.0.1/a.png",
    "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/a.png", "http://metadata.google.internal/",
])
def test_loopback_private_and_link_local_are_refused_by_default(image_host, url):
    image_host.routes["/a.png"] = Reply(body=png_bytes(1))
    with pytest.raises(UrlNotAllowedError):
        fetcher().fetch(url.format(port=image_host.port))
    assert image_host.requests == []  # refused before any connection was made


def test_a_public_name_resolving_to_a_private_address_is_refused_even_if_allow_listed(monkeypatch):
    fake_dns(monkeypatch, {"images.example.com": ["10.1.2.3"]})
    with pytest.raises(UrlNotAllowedError, match="resolves to non-public address 10.1.2.3"):
        fetcher(allowed=("images.example.com",)).fetch("http://images.example.com/a.png")


def test_label_studio_on_loopback_is_fetched_with_its_token_and_nothing_else_is(label_studio_host, image_host):
    label_studio_host.routes["/data/upload/1/a.png"] = Reply(body=png_bytes(1))
    image_host.routes["/b.png"] = Reply(body=png_bytes(2))
    f = fetcher(trusted=label_studio_host.origin, allowed=("127.0.0.1",))
    assert f.fetch(label_studio_host.url("/data/upload/1/a.png"), headers=TOKEN) == png_bytes(1)
    assert f.fetch(image_host.url("/b.png"), headers=TOKEN) == png_bytes(2)
    assert label_studio_host.requests[0][1]["authorization"] == TOKEN["Authorization"]
    assert "authorization" not in image_host.requests[0][1]


def test_another_port_on_label_studios_host_is_not_trusted(label_studio_host, image_host):
    image_host.routes["/a.png"] = Reply(body=png_bytes(1))
    with pytest.raises(UrlNotAllowedError, match="not Label Studio"):
        fetcher(trusted=label_studio_host.origin).fetch(image_host.url("/a.png"), headers=TOKEN)
    assert image_host.requests == []


def test_an_allowed_cidr_opens_a_private_network(image_host):
    image_host.routes["/a.png"] = Reply(body=png_bytes(1))
    assert fetcher(allowed=("127.0.0.0/8",)).fetch(image_host.url("/a.png")) == png_bytes(1)


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/x.png",
                                    "http://127.0.0.1:1/x.png", "file:///etc/passwd", "gopher://127.0.0.1:70/"])
def test_redirects_are_checked_like_the_first_url(label_studio_host, target):
    label_studio_host.routes["/hop"] = Reply(status=302, headers={"Location": target})
    with pytest.raises(UrlNotAllowedError):
        fetcher(trusted=label_studio_host.origin).fetch(label_studio_host.url("/hop"))


def test_a_redirect_from_an_outside_host_to_label_studio_gets_no_token(label_studio_host, image_host):
    label_studio_host.routes["/data/upload/secret.png"] = Reply(body=png_bytes(9))
    image_host.routes["/bounce"] = Reply(status=307, headers={"Location": label_studio_host.url("/data/upload/secret.png")})
    f = fetcher(trusted=label_studio_host.origin, allowed=("127.0.0.1",))
    f.fetch(image_host.url("/bounce"), headers=TOKEN)
    assert "authorization" not in label_studio_host.requests[-1][1]


def test_too_many_redirects_are_refused(label_studio_host):
    label_studio_host.routes["/loop"] = Reply(status=302, headers={"Location": "/loop"})
    with pytest.raises(ImageError, match="too many redirects"):
        fetcher(trusted=label_studio_host.origin).fetch(label_studio_host.url("/loop"))
    assert len(label_studio_host.requests) == 4  # the first request and max_redirects=3 hops


def test_dns_rebinding_is_caught_at_connect_time(monkeypatch, image_host):
    """The name answers a public address when checked and 127.0.0.1 when connected to."""
    image_host.routes["/admin"] = Reply(body=b"internal secrets")
    answers = iter(["93.184.216.34"])  # the first lookup (the policy's check) gets a public address
    fake_dns(monkeypatch, {"rebind.example": lambda: [next(answers, "127.0.0.1")]})
    with pytest.raises(UrlNotAllowedError, match="connected to non-public address 127.0.0.1"):
        fetcher(allowed=("rebind.example",)).fetch(f"http://rebind.example:{image_host.port}/admin")
    assert image_host.requests == []  # the connection was closed before the request was sent


def test_dns_rebinding_of_a_redirect_target_is_caught_too(monkeypatch, label_studio_host, image_host):
    image_host.routes["/admin"] = Reply(body=b"internal secrets")
    label_studio_host.routes["/hop"] = Reply(status=302, headers={"Location": f"http://rebind.example:{image_host.port}/admin"})
    answers = iter(["93.184.216.34"])
    fake_dns(monkeypatch, {"rebind.example": lambda: [next(answers, "127.0.0.1")]})
    with pytest.raises(UrlNotAllowedError, match="connected to non-public address"):
        fetcher(trusted=label_studio_host.origin, allowed=("rebind.example",)).fetch(label_studio_host.url("/hop"))
    assert image_host.requests == []


def test_proxy_settings_from_the_environment_are_ignored(monkeypatch, image_host):
    """A proxy would hide the address really fetched from, so the fetcher never uses one."""
    image_host.routes["/a.png"] = Reply(body=png_bytes(1))
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:1")
    assert fetcher(allowed=("127.0.0.1",)).fetch(image_host.url("/a.png")) == png_bytes(1)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed"])
def test_response_size_is_bounded(image_host, declared):
    image_host.routes["/big"] = Reply(body=b"x" * 500_000, content_length=declared)
    started = time.monotonic()
    with pytest.raises(ImageError, match="limit 100000|exceeds 100000 bytes"):
        fetcher(allowed=("127.0.0.1",), max_bytes=100_000).fetch(image_host.url("/big"))
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("reply", [Reply(body=b"x", delay_s=3.0), Reply(body=b"x" * 200, drip_s=0.02),
                                   Reply(body=b"x" * 10, drip_s=1.5)], ids=["slow-headers", "dripping", "stalled"])
def test_response_time_is_bounded(image_host, reply):
    image_host.routes["/slow"] = reply
    started = time.monotonic()
    with pytest.raises(ImageError, match="timed out") as info:
        fetcher(allowed=("127.0.0.1",), timeout_s=0.5).fetch(image_host.url("/slow"))
    assert info.value.transient
    assert time.monotonic() - started < 1.5


def test_headers_dripped_a_byte_at_a_time_are_cut_off_at_the_deadline(image_host):
    """Finding 2 of issue 12: the deadline was checked only while reading the body, so a
    status line and headers dripped slower than the read timeout were waited for in full."""
    image_host.routes["/drip-headers"] = Reply(body=png_bytes(1), headers={"X-Padding": "p" * 40}, header_drip_s=0.1)
    started = time.monotonic()
    with pytest.raises(ImageError, match="timed out") as info:
        fetcher(allowed=("127.0.0.1",), timeout_s=1.0).fetch(image_host.url("/drip-headers"))
    assert info.value.transient
    assert time.monotonic() - started < 2.0  # the whole response would take ~12 s


def test_a_kept_alive_connection_is_under_the_next_fetchs_deadline(image_host):
    """The first fetch leaves its connection in the pool; the second reuses it and drips."""
    image_host.routes["/a.png"] = Reply(body=png_bytes(1))
    image_host.routes["/drip-headers"] = Reply(body=png_bytes(1), headers={"X-Padding": "p" * 40}, header_drip_s=0.1)
    f = fetcher(allowed=("127.0.0.1",), timeout_s=1.0)
    assert f.fetch(image_host.url("/a.png")) == png_bytes(1)
    started = time.monotonic()
    with pytest.raises(ImageError, match="timed out"):
        f.fetch(image_host.url("/drip-headers"))
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("address", [
    "::7f00:1",                       # IPv4-compatible 127.0.0.1
    "::ffff:0:7f00:1",                # IPv4-translated 127.0.0.1
    "64:ff9b::7f00:1",                # NAT64 127.0.0.1
    "64:ff9b::a9fe:a9fe",             # NAT64 169.254.169.254 (cloud metadata)
    "64:ff9b:1::a00:1",               # local-use NAT64 10.0.0.1
    "2002:7f00:1::1",                 # 6to4 127.0.0.1
    "2002:a00:1::",                   # 6to4 10.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, client 192.0.2.45 (documentation range)
])
def test_ipv6_forms_that_carry_a_private_ipv4_address_are_refused(address):
    """Finding 9 of issue 12: with IMAGE_HOSTS=* Python 3.11 calls these global; each reaches the IPv4 inside."""
    policy = FetchPolicy(allowed_hosts=("*",))
    with pytest.raises(UrlNotAllowedError, match="non-public address"):
        policy.check(f"http://[{address}]/a.png")
    with pytest.raises(UrlNotAllowedError, match="non-public address"):  # and at connect time, after DNS
        policy.check_peer("http", "images.example.com", 80, address)


def test_ipv6_forms_that_carry_a_public_ipv4_address_stay_allowed():
    policy = FetchPolicy(allowed_hosts=("*",))
    policy.check("http://[64:ff9b::808:808]/a.png")  # NAT64 8.8.8.8
    policy.check_peer("http", "images.example.com", 80, "2002:808:808::1")  # 6to4 8.8.8.8


def test_the_loader_refuses_what_is_not_a_url(label_studio_host):
    loader = TaskImageLoader("image", label_studio_host.origin, fetcher(trusted=label_studio_host.origin))
    for ref in ["file:///etc/passwd", "ftp://x/a.png", "gopher://x/", "javascript:alert(1)", "//evil.example/a.png",
                "http://[::1/a.png", "http://x:99999/a.png"]:
        with pytest.raises(UrlNotAllowedError):
            loader({"image": ref})


def test_external_images_do_not_depend_on_label_studio_credentials(image_host):
    """An image from an allowed host is fetched even when Label Studio cannot give a token."""
    image_host.routes["/a.png"] = Reply(body=png_bytes(3))

    def label_studio_down():
        from ml_backend.adapters.ls_client import LabelStudioUnavailable
        raise LabelStudioUnavailable("cannot reach Label Studio")

    loader = TaskImageLoader("image", "http://127.0.0.1:1", fetcher(allowed=("127.0.0.1",)), label_studio_down)
    assert loader({"image": image_host.url("/a.png")}).size == (48, 48)
    with pytest.raises(ImageError, match="cannot authenticate to Label Studio") as info:
        loader({"image": "/data/upload/1/a.png"})
    assert info.value.transient


def fake_dns(monkeypatch, table: dict):
    """Answer getaddrinfo for the names in `table` (a list of addresses, or a function giving one)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in table:
            answer = table[host]
            addresses = answer() if callable(answer) else answer
            return [info for address in addresses for info in real(address, port, *args, **kwargs)]
        if isinstance(host, str) and host.endswith((".example.com", ".example", ".internal")):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
