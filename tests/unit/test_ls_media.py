"""TaskImageLoader: the image reference in a task -> RGB pixels."""

from __future__ import annotations

import re

import numpy as np
import pytest
import requests

from ml_backend.adapters.ls_media import TaskImageLoader
from ml_backend.core.errors import ImageError, UrlNotAllowedError
from ml_backend.core.fetch import FetchPolicy, ImageFetcher
from tests.stubs import Reply
from tests.conftest import decoded, image_uri, png_bytes


def make_loader(label_studio_url="http://127.0.0.1:1", root=None, token="Token abc", **policy) -> TaskImageLoader:
    session = requests.Session()
    session.trust_env = False
    fetcher = ImageFetcher(FetchPolicy(trusted_origins=(label_studio_url,), **policy), session=session)
    return TaskImageLoader("image", label_studio_url + "/", fetcher, lambda: {"Authorization": token},
                           local_files_root=root)


def same_pixels(image, seed):
    return image.mode == "RGB" and np.array_equal(np.asarray(image), np.asarray(decoded(seed)))


def test_data_uri():
    assert same_pixels(make_loader()({"image": image_uri(3)}), 3)


def test_data_uri_with_surrounding_whitespace():
    assert same_pixels(make_loader()({"image": "  " + image_uri(4) + "\n"}), 4)


@pytest.fixture
def local_root(tmp_path):
    root = tmp_path / "files"
    (root / "set").mkdir(parents=True)
    (root / "set" / "a b.png").write_bytes(png_bytes(5))
    (tmp_path / "outside.png").write_bytes(png_bytes(6))
    return root


def test_local_files_read_from_the_shared_root(local_root):
    loader = make_loader(root=str(local_root))
    assert same_pixels(loader({"image": "/data/local-files/?d=set/a%20b.png"}), 5)


@pytest.mark.parametrize("ref", ["/data/local-files/?d=../outside.png", "/data/local-files/?d=set/../../outside.png"])
def test_local_files_traversal_is_refused(local_root, ref):
    with pytest.raises(UrlNotAllowedError, match="escapes"):
        make_loader(root=str(local_root))({"image": ref})


def test_local_files_without_d_is_an_error(local_root):
    with pytest.raises(ImageError, match=r"without \?d="):
        make_loader(root=str(local_root))({"image": "/data/local-files/?x=1"})


@pytest.mark.parametrize("data", [{}, {"image": ""}, {"image": "   "}, {"image": None}, {"image": 42},
                                  {"other": image_uri(1)}])
def test_missing_image_field_is_an_image_error(data):
    with pytest.raises(ImageError, match="no image in field 'image'") as info:
        make_loader()(data)
    assert not info.value.transient


@pytest.mark.parametrize("ref, scheme", [("file:///etc/passwd", "file"), ("ftp://host/a.png", "ftp"),
                                         ("s3://bucket/a.png", "s3"), ("gs://bucket/a.png", "gs"),
                                         ("//evil.example/a.png", "(none)"), ("img.png", "(none)")])
def test_unsupported_schemes_are_refused(ref, scheme):
    with pytest.raises(UrlNotAllowedError, match=re.escape(f"scheme '{scheme}'")):
        make_loader()({"image": ref})


def test_upload_path_is_fetched_from_label_studio_with_auth(http_server):
    http_server.routes["/data/upload/3/cat.png"] = Reply(body=png_bytes(7))
    loader = make_loader(http_server.origin, token="Bearer fresh-token")
    assert same_pixels(loader({"image": "/data/upload/3/cat.png"}), 7)
    assert http_server.headers_for("/data/upload/3/cat.png")[0]["authorization"] == "Bearer fresh-token"


def test_local_files_without_a_root_go_to_label_studio(http_server):
    http_server.routes["/data/local-files/"] = Reply(body=png_bytes(8))
    loader = make_loader(http_server.origin)
    assert same_pixels(loader({"image": "/data/local-files/?d=set/a.png"}), 8)
    assert http_server.headers_for("/data/local-files/")[0]["authorization"] == "Token abc"


def test_absolute_url_to_label_studio_gets_auth_but_others_do_not(http_server, second_http_server):
    http_server.routes["/a.png"] = Reply(body=png_bytes(1))
    second_http_server.routes["/b.png"] = Reply(body=png_bytes(2))
    loader = make_loader(http_server.origin, allowed_hosts=("127.0.0.0/8",))
    assert same_pixels(loader({"image": http_server.url("/a.png")}), 1)
    assert same_pixels(loader({"image": second_http_server.url("/b.png")}), 2)
    assert http_server.headers_for("/a.png")[0]["authorization"] == "Token abc"
    assert "authorization" not in second_http_server.headers_for("/b.png")[0]


def test_http_url_outside_the_policy_is_refused():
    with pytest.raises(UrlNotAllowedError, match="allow-list"):
        make_loader()({"image": "http://images.example.com/a.png"})


def test_a_fetched_non_image_is_an_image_error(http_server):
    http_server.routes["/data/upload/x.png"] = Reply(body=b"<html>login</html>")
    with pytest.raises(ImageError, match="not a readable image"):
        make_loader(http_server.origin)({"image": "/data/upload/x.png"})


def test_max_pixels_from_the_policy_applies():
    with pytest.raises(ImageError, match="limit 100"):
        make_loader(max_pixels=100)({"image": image_uri(1)})


def test_local_files_nul_byte_is_an_image_error(local_root):
    with pytest.raises(ImageError):
        make_loader(root=str(local_root))({"image": "/data/local-files/?d=set/a%00.png"})


def failing_auth():
    """What the gateway does when Label Studio is down while a personal access token needs refreshing."""
    from ml_backend.adapters.ls_client import LabelStudioUnavailable

    raise LabelStudioUnavailable("cannot reach Label Studio at http://127.0.0.1:1: ConnectError")


def test_an_external_image_does_not_need_label_studio_credentials(http_server):
    http_server.routes["/ext.png"] = Reply(body=png_bytes(2))
    session = requests.Session()
    session.trust_env = False
    fetcher = ImageFetcher(FetchPolicy(trusted_origins=("http://127.0.0.1:1",), allowed_hosts=("127.0.0.0/8",)),
                           session=session)
    loader = TaskImageLoader("image", "http://127.0.0.1:1", fetcher, failing_auth)
    assert same_pixels(loader({"image": http_server.url("/ext.png")}), 2)


def test_a_failing_token_refresh_is_a_transient_image_error():
    session = requests.Session()
    session.trust_env = False
    fetcher = ImageFetcher(FetchPolicy(trusted_origins=("http://127.0.0.1:1",)), session=session)
    loader = TaskImageLoader("image", "http://127.0.0.1:1", fetcher, failing_auth)
    with pytest.raises(ImageError) as info:
        loader({"image": "/data/upload/1/a.png"})
    assert info.value.transient
