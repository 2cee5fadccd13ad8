"""TaskImageLoader: the image reference in a task -> RGB pixels."""

from __future__ import annotations

import base64
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
                                         ("wasb://container/a.png", "wasb"),
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


def resolve_route(files: dict[str, Reply]):
    """Label Studio's /tasks/<id>/resolve/: the storage URI comes URL-safe base64 encoded in ?fileuri=."""
    def route(query: dict[str, str]) -> Reply:
        uri = base64.urlsafe_b64decode(query["fileuri"]).decode()
        return files.get(uri, Reply(status=404, body=b"no such file"))
    return route


@pytest.mark.parametrize("uri", ["s3://bucket/cats/a.png", "gs://bucket/a b.png", "azure-blob://container/ä.png"])
def test_a_cloud_storage_uri_is_read_through_label_studio_for_its_task(http_server, uri):
    http_server.routes["/tasks/12/resolve/"] = resolve_route({uri: Reply(body=png_bytes(4))})
    loader = make_loader(http_server.origin, token="Token abc")
    assert same_pixels(loader({"image": uri}, 12), 4)
    assert http_server.headers_for("/tasks/12/resolve/")[0]["authorization"] == "Token abc"


def test_a_cloud_storage_uri_without_its_task_id_is_a_clear_error():
    with pytest.raises(UrlNotAllowedError, match="cloud-storage URI.*without its id"):
        make_loader()({"image": "s3://bucket/a.png"})


def test_a_presigned_redirect_is_followed_only_to_an_allowed_host_and_never_with_the_token(http_server,
                                                                                            second_http_server):
    """With presigned URLs on (Label Studio's default) the resolve endpoint redirects to the bucket's host."""
    second_http_server.routes["/bucket/a.png"] = Reply(body=png_bytes(5))
    presigned = Reply(status=303, headers={"Location": second_http_server.url("/bucket/a.png?X-Amz-Signature=x")})
    http_server.routes["/tasks/3/resolve/"] = resolve_route({"s3://bucket/a.png": presigned})
    with pytest.raises(UrlNotAllowedError, match="IMAGE_HOSTS.*pre-signed URLs"):
        make_loader(http_server.origin)({"image": "s3://bucket/a.png"}, 3)
    assert second_http_server.headers_for("/bucket/a.png") == []

    allowed = make_loader(http_server.origin, allowed_hosts=("127.0.0.0/8",))
    assert same_pixels(allowed({"image": "s3://bucket/a.png"}, 3), 5)
    assert "authorization" not in second_http_server.headers_for("/bucket/a.png")[0]


def test_a_gallery_of_images_is_refused_with_its_reason():
    with pytest.raises(ImageError, match="list of 2 images.*one image per task") as info:
        make_loader()({"image": [image_uri(1), image_uri(2)]})
    assert not info.value.transient
