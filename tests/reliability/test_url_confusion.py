"""URLs two parsers read differently never send Label Studio's token elsewhere (finding 1 of issue 12).

`http://OTHER\\@LS_HOST:LS_PORT/x.png` is Label Studio to `urllib.parse.urlsplit` and OTHER to
urllib3, which requests connects with. The fetcher now parses a URL once, refuses what
parsers could disagree on, and each connection checks it goes to the checked host and port
and sends credentials only to Label Studio. Real HTTP servers on loopback play Label Studio
and OTHER; the differential test compares the check with the HTTP client's own parsing.
"""

from __future__ import annotations

import ipaddress
import itertools
import random
from urllib.parse import urlsplit

import pytest
import requests
from urllib3.util import parse_url

from ml_backend.adapters.ls_media import TaskImageLoader
from ml_backend.core import fetch
from ml_backend.core.errors import UrlNotAllowedError
from ml_backend.core.fetch import FetchPolicy, FetchTarget, ImageFetcher, parse_fetch_url

from .support import LocalServer, Reply, png_bytes

TOKEN = "Token ls-secret-token-0002"


@pytest.fixture
def label_studio_host():
    host = LocalServer()
    yield host
    host.close()


def loader_for(label_studio: LocalServer, allowed: tuple[str, ...] = ("127.0.0.0/8",)) -> TaskImageLoader:
    fetcher = ImageFetcher(FetchPolicy(trusted_origins=(label_studio.origin,), allowed_hosts=allowed))
    return TaskImageLoader("image", label_studio.origin, fetcher, lambda: {"Authorization": TOKEN})


CONFUSIONS = [
    "http://127.0.0.1:{other}\\@127.0.0.1:{ls}/data/upload/1/a.png",      # the reported URL
    "http://127.0.0.1:{other}\\\\@127.0.0.1:{ls}/data/upload/1/a.png",
    "http://127.0.0.1:{other}%5C@127.0.0.1:{ls}/data/upload/1/a.png",
    "http://127.0.0.1:{other}\t@127.0.0.1:{ls}/data/upload/1/a.png",
    "http://127.0.0.1:{ls}@127.0.0.1:{other}/data/upload/1/a.png",
]


@pytest.mark.parametrize("template", CONFUSIONS, ids=["backslash-at", "two-backslashes", "escaped-backslash", "tab",
                                                      "userinfo"])
def test_a_url_parsers_read_differently_sends_no_token_anywhere(label_studio_host, image_host, template):
    """OTHER is an allowed host (loopback CIDR), as in the report: only the token is at stake."""
    label_studio_host.routes["/data/upload/1/a.png"] = Reply(body=png_bytes(1))
    image_host.routes["/data/upload/1/a.png"] = Reply(body=png_bytes(2))
    url = template.format(other=image_host.port, ls=label_studio_host.port)
    with pytest.raises(UrlNotAllowedError):
        loader_for(label_studio_host)({"image": url})
    sent = [headers for _, headers in label_studio_host.requests + image_host.requests]
    assert all("authorization" not in headers for headers in sent), sent


def test_with_the_default_allow_list_a_backslash_url_to_a_public_host_is_refused():
    """Decision level, no connection: with IMAGE_HOSTS empty the URL passed as Label Studio's own."""
    policy = FetchPolicy(trusted_origins=("http://127.0.0.1:8080",))
    with pytest.raises(UrlNotAllowedError, match="backslash"):
        policy.check("http://93.184.216.34\\@127.0.0.1:8080/x.png")
    assert not policy.is_trusted("http://93.184.216.34\\@127.0.0.1:8080/x.png")


def test_the_connection_refuses_credentials_even_if_the_url_check_were_fooled(monkeypatch, label_studio_host, image_host):
    """Defence in depth: with a parser that reads the reported URL as Label Studio (the old urlsplit
    check), the connection itself sees it is going to OTHER and sends nothing."""
    image_host.routes["/data/upload/1/a.png"] = Reply(body=png_bytes(2))

    def lax_parse(url: str) -> FetchTarget:
        parts = urlsplit(url)
        return FetchTarget(parts.scheme, parts.hostname, parts.port or 80, url.split(parts.netloc, 1)[1] or "/")

    monkeypatch.setattr(fetch, "parse_fetch_url", lax_parse)
    fetcher = ImageFetcher(FetchPolicy(trusted_origins=(label_studio_host.origin,), allowed_hosts=("127.0.0.0/8",)))
    monkeypatch.setattr(FetchTarget, "url", property(lambda self: raw_url))  # the raw URL goes to requests
    raw_url = f"http://127.0.0.1:{image_host.port}\\@127.0.0.1:{label_studio_host.port}/data/upload/1/a.png"
    with pytest.raises(UrlNotAllowedError, match="not the checked"):
        fetcher.fetch(raw_url, headers={"Authorization": TOKEN})
    assert image_host.requests == [] and label_studio_host.requests == []


# -- the differential test ----------------------------------------------------------------------
HOSTS = ["ls.example", "LS.Example", "127.0.0.1", "93.184.216.34", "[::1]", "[::ffff:127.0.0.1]", "[0:0::1]",
         "[64:ff9b::7f00:1]", "0x7f.0.0.1", "2130706433", "127.1", "0177.0.0.1", "ls.example.", "a..b",
         "xn--bcher-kva.example", "b\u00fccher.example", "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0ecom",
         "ls%2eexample", "[fe80::1%25eth0]", "_srv.example", "ls.example\u3002com", "LS.EXAMPLE"]
PORTS = ["", ":8080", ":443", ":08080", ":", ":65536", ":0", ":+80", ": 80", ":80:90", ":\u0663\u0660", ":0x50"]
# Put before the host: things that may hide another host, or make a parser stop early.
PREFIXES = ["", "other.example\\@", "other.example\\\\@", "other.example%5C@", "other.example%5c@", "user@",
            "user:pw@", "other.example:1@", "a@b@", "other.example\t@", "other.example @", "other.example#@",
            "other.example?@", "other.example;@", "other.example%40", "@", "other.example\n", "other.example\r\n@",
            "other.example\x00@", "other.example\uff20", "[::1]@", "other.example\u3002"]
# After the host and port.
SUFFIXES = ["/x.png", "", "?q=1", "#f", "\\x.png", "/a b.png", "\\@evil.example/x", "%2F@evil.example/",
            "#@evil.example", "?@evil.example:1/", "/..\\..\\x", ";@evil.example", "\t/x", "/x.png\n"]
SCHEMES = ["http", "https", "HTTP", "hTtPs", " http", "http:", "http:/", "http:\\\\"]


def confusing_urls(count: int = 1500, seed: int = 12) -> list[str]:
    """Every prefix and suffix at least once, then random combinations: deterministic."""
    urls = {f"http://{prefix}{host}:8080/x.png" for prefix in PREFIXES for host in HOSTS}
    urls |= {f"http://ls.example{port}{suffix}" for port in PORTS for suffix in SUFFIXES}
    urls |= {f"{scheme}://{host}/x.png" for scheme in SCHEMES for host in HOSTS}
    rng = random.Random(seed)
    everything = list(itertools.product(SCHEMES, PREFIXES, HOSTS, PORTS, SUFFIXES))
    for scheme, prefix, host, port, suffix in rng.sample(everything, len(everything)):
        if len(urls) >= count:
            break
        urls.add(f"{scheme}://{prefix}{host}{port}{suffix}")
    return sorted(urls)


def normal(host: str | None, port: int | None, scheme: str) -> tuple[str, int] | None:
    if not host:
        return None
    host = host.strip("[]").lower()
    try:
        host = ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    return host, port or {"http": 80, "https": 443}.get(scheme.lower(), 0)


def by_stdlib(url: str):
    """What the old check saw (urllib.parse.urlsplit)."""
    try:
        parts = urlsplit(url)
        return normal(parts.hostname, parts.port, parts.scheme)
    except ValueError:
        return None


def by_urllib3(url: str):
    try:
        parts = parse_url(url)
        return normal(parts.host, parts.port, parts.scheme or "")
    except Exception:  # noqa: BLE001 - refused by the client is fine: nothing would be fetched
        return None


ADAPTER = requests.adapters.HTTPAdapter()


def by_requests(url: str):
    """Where requests would really connect: the pool its adapter picks for the prepared request."""
    try:
        prepared = requests.Request("GET", url).prepare()
        pool = ADAPTER.get_connection_with_tls_context(prepared, verify=True)
        return normal(pool.host, pool.port, pool.scheme)
    except Exception:  # noqa: BLE001
        return None


def test_the_url_check_agrees_with_the_http_client_on_every_url_it_accepts():
    corpus = confusing_urls()
    assert len(corpus) >= 1500
    accepted, disagreements, parsers_differ, parsers_differ_refused = 0, [], 0, 0
    for url in corpus:
        stdlib, urllib3_view, requests_view = by_stdlib(url), by_urllib3(url), by_requests(url)
        confusing = stdlib is not None and requests_view is not None and stdlib != requests_view
        parsers_differ += confusing
        try:
            target = parse_fetch_url(url)
        except UrlNotAllowedError:
            parsers_differ_refused += confusing
            continue
        accepted += 1
        checked = (target.host, target.port)
        for name, seen in (("urlsplit", stdlib), ("urllib3", urllib3_view), ("requests", requests_view),
                           ("requests, rebuilt URL", by_requests(target.url))):
            if seen != checked:
                disagreements.append((url, name, checked, seen))
    print(f"{len(corpus)} URLs: {accepted} accepted, {parsers_differ} on which urlsplit and requests disagree "
          f"(all refused: {parsers_differ_refused == parsers_differ}), {len(disagreements)} disagreements")
    assert disagreements == []
    # The corpus is worth its name: many URLs the two parsers read differently (all refused),
    # and enough accepted ones that agreement means something.
    assert parsers_differ >= 100 and parsers_differ_refused == parsers_differ
    assert accepted >= 100
