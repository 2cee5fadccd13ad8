"""Fetching a task's bytes safely: data: URIs, local files, the URL policy, the fetcher against a local server."""

from __future__ import annotations

import base64
import gzip
import ipaddress
import re
import zlib

import pytest
import requests

from ml_backend.core import fetch
from ml_backend.core.errors import ImageError, UrlNotAllowedError
from ml_backend.core.fetch import FetchPolicy, ImageFetcher, decode_data_uri, read_local_file
from tests.stubs import Reply
from tests.conftest import png_bytes, timed


# -- data: URIs ---------------------------------------------------------------------


def test_data_uri_base64():
    payload = png_bytes(3)
    assert decode_data_uri("data:image/png;base64," + base64.b64encode(payload).decode(), 10**6) == payload


def test_data_uri_percent_encoded():
    assert decode_data_uri("data:text/plain,hello%20world%00", 100) == b"hello world\x00"


@pytest.mark.parametrize(
    "uri, max_bytes, message",
    [
        ("data:image/png;base64,@@@notbase64@@@", 1000, "bad base64: '@' at position 0"),
        ("data:image/png;base64,abcde", 1000, "bad base64: its length leaves one character over"),
        ("data:image/png;base64,ab=c", 1000, "bad base64: '=' at position 2"),  # padding only at the end
        ("data:image/png;base64,@AAAA", 1000, "bad base64: '@' at position 0"),  # the character, not the length
        ("data:,\ud800", 1000, "unpaired surrogate"),  # JSON lets a lone surrogate through
        ("data:image/png;base64,QUJD\udfff", 1000, "unpaired surrogate"),
        ("data:text/plain," + "\U0001f600" * 300, 1000, "exceeds 1000 bytes"),  # 300 characters, 1200 bytes
        ("data:image/png;base64" + "A" * 40, 1000, "no comma"),
        ("data:image/png;base64," + base64.b64encode(b"x" * 2000).decode(), 1000, "exceeds 1000 bytes"),
    ],
)
def test_data_uri_errors(uri, max_bytes, message):
    with pytest.raises(ImageError, match=message):
        decode_data_uri(uri, max_bytes)


@pytest.mark.parametrize(
    "prefix, encode",
    [
        ("DATA:image/png;base64,", lambda b: base64.b64encode(b).decode()),  # the scheme in capitals
        ("data:image/png;BASE64,", lambda b: base64.b64encode(b).decode()),
        ("data:image/png; base64 ,", lambda b: base64.b64encode(b).decode()),
        ("data:image/png;base64,", lambda b: base64.encodebytes(b).decode()),  # wrapped at 76 columns
        ("data:image/png;base64,", lambda b: base64.b64encode(b).decode().rstrip("=")),  # unpadded
        ("data:image/png;base64,", lambda b: base64.b64encode(b).decode().replace("+", "%2B").replace("/", "%2F")),
    ],
    ids=["DATA-scheme", "BASE64", "spaced-parameter", "line-wrapped", "unpadded", "percent-encoded"],
)
def test_data_uris_a_browser_shows_are_read(prefix, encode):
    """Browsers read data: URIs by WHATWG's rules, so an annotator sees these images; they failed here
    with "bad base64" or "unsupported image reference scheme 'data'" (found by fuzzing, 2026-12-01)."""
    payload = png_bytes(5) + b"\xfb\xff"  # bytes whose base64 holds '+' and '/' and needs padding
    assert b"+" in base64.b64encode(payload) and b"/" in base64.b64encode(payload) and len(payload) % 3
    fetcher = ImageFetcher(FetchPolicy(max_bytes=10**6))
    assert fetcher.fetch(prefix + encode(payload)) == payload


def test_a_data_uri_is_held_to_its_size_limit_in_decoded_bytes():
    assert decode_data_uri("data:," + "%41" * 1000, 1000) == b"A" * 1000  # 3000 characters, 1000 bytes
    with pytest.raises(ImageError, match="exceeds 1000 bytes"):
        decode_data_uri("data:," + "a" * 1001, 1000)


def test_fetcher_reads_data_uris_without_a_network():
    fetcher = ImageFetcher(FetchPolicy(max_bytes=10**6))
    payload = png_bytes(8)
    assert fetcher.fetch("data:image/png;base64," + base64.b64encode(payload).decode()) == payload


# -- local files ---------------------------------------------------------------------------


@pytest.fixture
def files_root(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.png").write_bytes(png_bytes(1))
    (tmp_path / "secret.txt").write_text("top secret")
    (root / "escape.png").symlink_to(tmp_path / "secret.txt")
    return root


@pytest.mark.parametrize("relative", ["sub/a.png", "/sub/a.png", "sub/../sub/a.png", "./sub/a.png"])
def test_read_local_file_inside_the_root(files_root, relative):
    assert read_local_file(files_root, relative, 10**6) == png_bytes(1)


@pytest.mark.parametrize("relative", ["../secret.txt", "/../secret.txt", "sub/../../secret.txt", "escape.png"])
def test_read_local_file_refuses_paths_escaping_the_root(files_root, relative):
    with pytest.raises(UrlNotAllowedError, match="escapes the local files root"):
        read_local_file(files_root, relative, 10**6)


def test_read_local_file_missing_and_too_big(files_root):
    with pytest.raises(ImageError, match="cannot read local file 'sub/nope.png'"):
        read_local_file(files_root, "sub/nope.png", 10**6)
    with pytest.raises(ImageError, match="limit 10"):
        read_local_file(files_root, "sub/a.png", 10)


def test_read_local_file_with_an_unpaired_surrogate_is_an_image_error(files_root):
    with pytest.raises(ImageError, match="unpaired surrogate"):
        read_local_file(files_root, "sub/a\ud800.png", 1000)


def test_read_local_file_with_a_nul_byte_is_an_image_error(files_root):
    with pytest.raises(ImageError):
        read_local_file(files_root, "sub/a\x00.png", 10**6)


# -- FetchPolicy.check -------------------------------------------------------------------------


LS = "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    "policy, url",
    [
        (FetchPolicy(trusted_origins=(LS,)), "http://127.0.0.1:8080/data/upload/1/a.png"),
        (FetchPolicy(trusted_origins=(LS + "/",)), "http://127.0.0.1:8080/x?y=1"),
        (FetchPolicy(trusted_origins=("http://LocalHost:8080",)), "http://localhost:8080/a.png"),
        (FetchPolicy(trusted_origins=("https://ls.example.com",)), "https://ls.example.com:443/a.png"),
        (FetchPolicy(allowed_hosts=("10.0.0.0/8",)), "http://10.1.2.3/a.png"),
        (FetchPolicy(allowed_hosts=("192.168.1.7",)), "http://192.168.1.7:9000/a.png"),
        (FetchPolicy(allowed_hosts=("*",)), "https://93.184.216.34/a.png"),
    ],
    ids=["trusted-loopback", "trusted-trailing-slash", "trusted-case", "trusted-default-port", "cidr",
         "single-ip", "public-literal"],
)
def test_policy_allows(policy, url):
    policy.check(url)


@pytest.mark.parametrize(
    "policy, url, message",
    [
        (FetchPolicy(allowed_hosts=("*",)), "file:///etc/passwd", "scheme 'file'"),
        (FetchPolicy(allowed_hosts=("*",)), "ftp://example.com/a.png", "scheme 'ftp'"),
        (FetchPolicy(allowed_hosts=("*",)), "gopher://example.com/", "scheme 'gopher'"),
        (FetchPolicy(allowed_hosts=("*",)), "//example.com/a.png", r"scheme '\(none\)'"),
        (FetchPolicy(allowed_hosts=("*",)), "http:///a.png", "no host"),
        (FetchPolicy(), "http://images.example.com/a.png", "not in the image host allow-list"),
        (FetchPolicy(allowed_hosts=("*.example.com",)), "http://example.org/a.png", "not in the image host allow-list"),
        (FetchPolicy(trusted_origins=(LS,)), "http://127.0.0.1:8081/a.png", "not in the image host allow-list"),
        (FetchPolicy(trusted_origins=(LS,)), "https://127.0.0.1:8080/a.png", "not in the image host allow-list"),
        (FetchPolicy(trusted_origins=(LS,)), "http://127.0.0.1:8080@evil.example/a.png", "userinfo"),
        (FetchPolicy(allowed_hosts=("localhost",)), "http://localhost/a.png", "non-public address"),
        (FetchPolicy(allowed_hosts=("*",)), "http://127.0.0.1/a.png", "non-public address 127.0.0.1"),
        (FetchPolicy(allowed_hosts=("*",)), "http://10.0.0.5/a.png", "non-public address 10.0.0.5"),
        (FetchPolicy(allowed_hosts=("*",)), "http://169.254.169.254/latest/meta-data", "non-public address"),
        (FetchPolicy(allowed_hosts=("*",)), "http://[::1]/a.png", "non-public address ::1"),
        (FetchPolicy(allowed_hosts=("10.0.0.0/8",)), "http://11.0.0.1/a.png", "allow-list"),
    ],
    ids=["file", "ftp", "gopher", "no-scheme", "no-host", "not-allow-listed", "wildcard-mismatch", "other-port",
         "other-scheme", "userinfo-trick", "localhost", "loopback-literal", "private-literal", "link-local",
         "ipv6-loopback", "outside-cidr"],
)
def test_policy_refuses(policy, url, message):
    with pytest.raises(UrlNotAllowedError, match=message):
        policy.check(url)


@pytest.mark.parametrize(
    "resolved, allowed",
    [("93.184.216.34", True), ("10.2.3.4", False), ("169.254.1.1", False), ("127.0.0.1", False), ("::1", False)],
)
def test_policy_checks_every_address_an_allow_listed_name_resolves_to(monkeypatch, resolved, allowed):
    monkeypatch.setattr(fetch, "_resolve", lambda host, port: [ipaddress.ip_address("93.184.216.35"),
                                                                 ipaddress.ip_address(resolved)])
    policy = FetchPolicy(allowed_hosts=("*.example.com",))
    if allowed:
        policy.check("http://cdn.example.com/a.png")
    else:
        with pytest.raises(UrlNotAllowedError, match="non-public address"):
            policy.check("http://cdn.example.com/a.png")


def test_policy_cidr_entry_admits_a_private_name(monkeypatch):
    monkeypatch.setattr(fetch, "_resolve", lambda host, port: [ipaddress.ip_address("10.9.8.7")])
    FetchPolicy(allowed_hosts=("minio.internal", "10.0.0.0/8")).check("http://minio.internal:9000/b/a.png")
    with pytest.raises(UrlNotAllowedError):
        FetchPolicy(allowed_hosts=("minio.internal",)).check("http://minio.internal:9000/b/a.png")


@pytest.mark.parametrize("url", ["http://example.com:99999/a.png", "http://example.com:abc/a.png", "http://[::1/a.png",
                                 "http://example.com/a\ud800.png"])
def test_policy_refuses_malformed_urls_with_url_not_allowed(url):
    with pytest.raises(UrlNotAllowedError):
        FetchPolicy(allowed_hosts=("*",)).check(url)


# -- ImageFetcher against a local server ---------------------------------------------------------


def fetcher_for(server, **policy) -> ImageFetcher:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment between us and 127.0.0.1
    return ImageFetcher(FetchPolicy(trusted_origins=(server.origin,), **policy), session=session)


def test_fetcher_serves_bytes(http_server):
    http_server.routes["/a.png"] = Reply(body=png_bytes(1))
    assert fetcher_for(http_server).fetch(http_server.url("/a.png")) == png_bytes(1)


@pytest.mark.parametrize("status, transient", [(404, False), (403, False), (410, False), (429, True),
                                               (500, True), (503, True)])
def test_fetcher_http_errors(http_server, status, transient):
    http_server.routes["/x"] = Reply(status=status, body=b"nope")
    with pytest.raises(ImageError, match=f"HTTP {status}") as info:
        fetcher_for(http_server).fetch(http_server.url("/x?token=secret"))
    assert info.value.transient is transient
    assert "secret" not in str(info.value)  # query strings may carry tokens


@pytest.mark.parametrize("content_length", [True, False], ids=["declared", "streamed"])
def test_fetcher_refuses_an_oversized_body(http_server, content_length):
    http_server.routes["/big"] = Reply(body=b"x" * 5000, content_length=content_length)
    with pytest.raises(ImageError, match="limit 1000|exceeds 1000 bytes") as info:
        fetcher_for(http_server, max_bytes=1000).fetch(http_server.url("/big"))
    assert not info.value.transient


@pytest.mark.parametrize(
    "encoding, compress",
    [("gzip", gzip.compress), ("x-gzip", gzip.compress), ("deflate", zlib.compress),
     ("deflate", lambda b: zlib.compress(b, wbits=-zlib.MAX_WBITS))],  # deflate with and without its zlib header
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw"],
)
def test_a_body_compressed_against_our_accept_encoding_is_inflated(http_server, encoding, compress):
    http_server.routes["/z.png"] = Reply(body=compress(png_bytes(4)), headers={"Content-Encoding": encoding})
    assert fetcher_for(http_server).fetch(http_server.url("/z.png")) == png_bytes(4)


@pytest.mark.parametrize(
    "encoding, body",
    [
        ("gzip, gzip", gzip.compress(gzip.compress(png_bytes(4)))),  # codings undone last applied first
        ("identity, gzip", gzip.compress(png_bytes(4))),
        ("gzip", gzip.compress(png_bytes(4))[:-8]),  # no trailer: what it holds, as Chromium keeps it
        ("utf-8", png_bytes(4)),  # not a compression (a misconfigured bucket): the body as it is
        ("none", png_bytes(4)),
    ],
    ids=["gzip-twice", "identity-then-gzip", "no-gzip-trailer", "utf-8", "none"],
)
def test_content_encodings_are_read_as_chromium_reads_them(http_server, encoding, body):
    """Each of these was refused while a browser showed the image (compared with Chromium's fetch(), 2026-12-02)."""
    http_server.routes["/z.png"] = Reply(body=body, headers={"Content-Encoding": encoding})
    assert fetcher_for(http_server).fetch(http_server.url("/z.png")) == png_bytes(4)


def test_an_empty_gzip_body_is_empty_not_corrupt(http_server):
    http_server.routes["/z.png"] = Reply(body=b"", headers={"Content-Encoding": "gzip"})
    assert fetcher_for(http_server).fetch(http_server.url("/z.png")) == b""


@pytest.mark.parametrize(
    "body, encoding, message",
    [
        (gzip.compress(bytes(50_000)), "gzip", "inflates (gzip) to more than 1000 bytes"),  # a bomb, bounded
        (b"not gzip at all", "gzip", "corrupt gzip body"),
        (b"\xff" * 20, "deflate", "corrupt deflate body"),
        (png_bytes(4, (8, 8)), "br", "'br'-compressed, which the backend does not read"),
    ],
    ids=["bomb", "corrupt-gzip", "corrupt-deflate", "brotli"],
)
def test_a_compressed_body_that_cannot_be_inflated_is_an_image_error(http_server, body, encoding, message):
    http_server.routes["/z.png"] = Reply(body=body, headers={"Content-Encoding": encoding})
    with pytest.raises(ImageError, match=re.escape(message)):
        fetcher_for(http_server, max_bytes=1000).fetch(http_server.url("/z.png"))


def test_fetcher_slow_headers_time_out(http_server):
    http_server.routes["/slow"] = Reply(body=b"x", delay_s=3.0)
    result, seconds = timed(lambda: fetcher_for(http_server, timeout_s=0.4).fetch(http_server.url("/slow")))
    assert isinstance(result, ImageError) and result.transient
    assert "timed out" in str(result)
    assert seconds < 2.0


def test_fetcher_stalled_body_times_out(http_server):
    http_server.routes["/stall"] = Reply(body=b"x" * 100, stall_s=3.0)
    result, seconds = timed(lambda: fetcher_for(http_server, timeout_s=0.4).fetch(http_server.url("/stall")))
    assert isinstance(result, ImageError) and result.transient
    # the error alone shows the timeout fired before the stall ended (the body would then have come in
    # whole); the bound is the stall itself, not a speed target (2.65 s on a loaded 2-core machine)
    assert seconds < 3.0


def test_fetcher_dripping_body_hits_the_total_timeout(http_server):
    http_server.routes["/drip"] = Reply(body=b"x" * 30, drip_s=0.05)  # 1.5 s in all
    result, seconds = timed(lambda: fetcher_for(http_server, timeout_s=0.3).fetch(http_server.url("/drip")))
    assert isinstance(result, ImageError) and result.transient
    assert seconds < 1.0


def test_fetcher_follows_redirects_within_the_policy(http_server):
    http_server.routes["/old"] = Reply(status=302, headers={"Location": "/new"})
    http_server.routes["/new"] = Reply(body=b"moved")
    assert fetcher_for(http_server).fetch(http_server.url("/old")) == b"moved"


def test_fetcher_refuses_a_redirect_to_a_host_not_allowed(http_server):
    http_server.routes["/go"] = Reply(status=301, headers={"Location": "http://169.254.169.254/latest/meta-data"})
    with pytest.raises(UrlNotAllowedError, match="allow-list"):
        fetcher_for(http_server).fetch(http_server.url("/go"))


def test_fetcher_refuses_a_redirect_to_another_scheme(http_server):
    http_server.routes["/go"] = Reply(status=307, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(UrlNotAllowedError, match="scheme 'file'"):
        fetcher_for(http_server).fetch(http_server.url("/go"))


def test_fetcher_stops_after_max_redirects(http_server):
    http_server.routes["/loop"] = Reply(status=302, headers={"Location": "/loop"})
    with pytest.raises(ImageError, match="too many redirects"):
        fetcher_for(http_server, max_redirects=2).fetch(http_server.url("/loop"))
    assert len(http_server.headers_for("/loop")) == 3


def test_auth_headers_go_only_to_the_trusted_origin(http_server, second_http_server):
    """The second server is allowed (loopback CIDR) but not trusted: it must never see the token."""
    token = {"Authorization": "Token s3cret"}
    http_server.routes["/mine"] = Reply(body=b"1")
    http_server.routes["/hop"] = Reply(status=302, headers={"Location": second_http_server.url("/theirs")})
    second_http_server.routes["/theirs"] = Reply(body=b"2")
    fetcher = fetcher_for(http_server, allowed_hosts=("127.0.0.0/8",))

    assert fetcher.fetch(http_server.url("/mine"), headers=token) == b"1"
    assert fetcher.fetch(second_http_server.url("/theirs"), headers=token) == b"2"
    assert fetcher.fetch(http_server.url("/hop"), headers=token) == b"2"

    assert http_server.headers_for("/mine")[0]["authorization"] == "Token s3cret"
    assert http_server.headers_for("/hop")[0]["authorization"] == "Token s3cret"
    assert [h.get("authorization") for h in second_http_server.headers_for("/theirs")] == [None, None]


def test_fetcher_connection_refused_is_transient(http_server):
    url = http_server.url("/gone")
    http_server.close()
    with pytest.raises(ImageError, match="cannot fetch") as info:
        fetcher_for(http_server).fetch(url)
    assert info.value.transient


def test_a_redirect_whose_location_is_not_utf8_is_an_image_error(http_server):
    """requests reads a redirect's Location as UTF-8 and raised UnicodeDecodeError, past the
    fetcher's excepts: the task's error read "cannot load image: UnicodeDecodeError" (found by fuzzing)."""
    http_server.routes["/moved"] = Reply(status=302, headers={"Location": "/caf\u00e9.png"})
    with pytest.raises(ImageError, match="Location is not valid UTF-8"):
        ImageFetcher(FetchPolicy(allowed_hosts=("127.0.0.1",))).fetch(http_server.url("/moved"))


def test_a_presigned_urls_credentials_stay_out_of_a_library_warning(http_server, caplog):
    """urllib3 logs "Failed to parse headers (url=...)" with the whole URL, query string and all, for a response whose
    headers it cannot parse: a presigned URL's credential and signature went to the log with it."""
    from ml_backend.service.redaction import MASK, SecretRedactor

    # a header line without a colon (written through a header value; the lines after it are lost, so the body
    # ends when the server closes the connection): the response still arrives
    http_server.routes["/a.png"] = Reply(body=png_bytes(), headers={"Content-Type": "image/png",
                                                                     "X-Odd": "1\r\nno colon here"},
                                         content_length=False)
    url = http_server.url("/a.png") + ("?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE7Q%2F20261205"
                                       "&X-Amz-Date=20261205T000000Z&X-Amz-Signature=0123456789abcdef")
    redactor = SecretRedactor()
    caplog.handler.addFilter(redactor)
    try:
        data = ImageFetcher(FetchPolicy(allowed_hosts=("127.0.0.0/8",), timeout_s=5.0)).fetch(url)
    finally:
        caplog.handler.removeFilter(redactor)
    assert data == png_bytes()
    assert "Failed to parse headers" in caplog.text and "X-Amz-Signature=" + MASK in caplog.text
    assert "AKIAEXAMPLE7Q" not in caplog.text and "0123456789abcdef" not in caplog.text
    assert "X-Amz-Date=20261205T000000Z" in caplog.text  # what is not a credential stays readable
