"""TaskTextLoader and decode_text: the text of a <Text> task, inline or read from a file under the fetch policy."""

from __future__ import annotations

import codecs

import pytest
import requests

from ml_backend.adapters.ls_media import TaskImageLoader, TaskTextLoader
from ml_backend.core.errors import ImageError, TextError, UrlNotAllowedError
from ml_backend.core.fetch import FetchPolicy, ImageFetcher
from ml_backend.core.texts import decode_text
from tests.stubs import Reply, data_uri

EMAIL = "Subject: cheap meds. Buy now, limited offer: ünïcödé café €5"


def text_loader(value_is_url=False, label_studio_url="http://127.0.0.1:1", root=None, token="Token abc",
                **policy) -> TaskTextLoader:
    session = requests.Session()
    session.trust_env = False
    fetcher = ImageFetcher(FetchPolicy(trusted_origins=(label_studio_url,), **policy), session=session)
    files = TaskImageLoader("doc", label_studio_url, fetcher, lambda: {"Authorization": token}, local_files_root=root)
    return TaskTextLoader("doc", value_is_url, files)


def test_inline_text_is_the_task_text_as_it_is():
    assert text_loader()({"doc": EMAIL}) == EMAIL


def test_inline_text_that_looks_like_a_url_is_still_text():
    # Without valueType="url" Label Studio shows the string itself, so the backend embeds the string.
    assert text_loader()({"doc": "http://169.254.169.254/latest"}) == "http://169.254.169.254/latest"


@pytest.mark.parametrize("data, message", [
    ({}, "no text in field 'doc'"),
    ({"doc": {"a": "b"}}, "holds dict, not text"),
    ({"doc": [["nested"]]}, "holds list, not text"),
    ({"doc": True}, "holds bool, not text"),
    ({"doc": "   \n"}, "is empty"),
    # each embedded exactly as "" did, which is refused: NUL, zero-width space and BOM, soft hyphen, a control
    ({"doc": "\x00\x00"}, "is empty"),
    ({"doc": "\u200b\ufeff "}, "is empty"),
    ({"doc": "\u00ad\x07"}, "is empty"),
])
def test_missing_empty_or_non_text_values_are_text_errors(data, message):
    with pytest.raises(TextError, match=message):
        text_loader()(data)


@pytest.mark.parametrize("value, text", [(4711, "4711"), (3.14, "3.14"), (["two", "lines"], "two\nlines")])
def test_numbers_and_lists_label_studio_accepts_in_a_text_field_are_read_as_it_shows_them(value, text):
    assert text_loader()({"doc": value}) == text


def test_a_dotted_field_reads_into_nested_task_data_as_label_studio_does():
    """`<Text value="$meta.body">` failed every task ("no text in field 'meta.body'") that Label Studio showed."""
    files = text_loader().files
    nested = TaskTextLoader("meta.body", False, files)
    assert nested({"meta": {"body": EMAIL}}) == EMAIL
    assert nested({"meta.body": "a flat key of that name wins"}) == "a flat key of that name wins"
    with pytest.raises(TextError, match="no text in field 'meta.body'"):
        nested({"meta": "not an object"})


@pytest.mark.parametrize("path", ["/api/users", "/api/projects/1/export?exportType=JSON", "/./api/current-user/whoami",
                                  "/%61pi/users", "/API/users", "/data/../api/users"])
def test_label_studio_api_paths_are_not_fetched_as_task_files(http_server, path):
    """A task holding /api/... was fetched with the API key and its JSON embedded; an export path ran an export."""
    loader = text_loader(True, http_server.origin)
    with pytest.raises(UrlNotAllowedError, match="Label Studio's API, not a file"):
        loader({"doc": path})
    assert http_server.requests == []


def test_a_text_file_uploaded_to_label_studio_is_fetched_with_auth(http_server):
    http_server.routes["/data/upload/3/mail.txt"] = Reply(body=EMAIL.encode())
    loader = text_loader(True, http_server.origin, token="Token fresh")
    assert loader({"doc": "/data/upload/3/mail.txt"}) == EMAIL
    assert http_server.headers_for("/data/upload/3/mail.txt")[0]["authorization"] == "Token fresh"


def test_a_local_file_is_read_from_the_shared_root_and_traversal_is_refused(tmp_path):
    root = tmp_path / "files"
    (root / "mails").mkdir(parents=True)
    (root / "mails" / "a.txt").write_bytes(EMAIL.encode("utf-8-sig"))  # a BOM is not part of the text
    (tmp_path / "secret.txt").write_text("not yours")
    loader = text_loader(True, root=str(root))
    assert loader({"doc": "/data/local-files/?d=mails/a.txt"}) == EMAIL
    with pytest.raises(UrlNotAllowedError, match="escapes"):
        loader({"doc": "/data/local-files/?d=../secret.txt"})


@pytest.mark.parametrize("prefix", ["", "  "])
def test_a_data_uri_is_refused_because_label_studio_does_not_show_it(prefix):
    """Embedded, scored and queued, it showed the annotator an error box instead of the text: the 1.23
    editor takes only http(s) or /path for valueType="url" (fuzz pass 4, 2026-12-02)."""
    with pytest.raises(TextError, match="data: URI, which Label Studio does not show"):
        text_loader(True)({"doc": prefix + data_uri(EMAIL.encode(), "text/plain").replace("data:", "DATA:")})


def test_a_text_file_in_cloud_storage_is_read_through_label_studio_for_its_task(http_server):
    http_server.routes["/tasks/8/resolve/"] = Reply(body=EMAIL.encode())
    assert text_loader(True, http_server.origin)({"doc": "s3://mail/1.txt"}, 8) == EMAIL
    assert http_server.headers_for("/tasks/8/resolve/")[0]["authorization"] == "Token abc"


def test_urls_outside_the_policy_are_refused_before_any_request(http_server):
    with pytest.raises(UrlNotAllowedError):
        text_loader(True)({"doc": http_server.url("/mail.txt")})
    assert http_server.requests == []


def test_a_text_file_over_the_size_limit_is_refused(http_server):
    http_server.routes["/data/upload/big.txt"] = Reply(body=b"a" * 5000)
    with pytest.raises(ImageError, match="5000 bytes, limit 1000"):
        text_loader(True, http_server.origin, max_bytes=1000)({"doc": "/data/upload/big.txt"})


def test_a_missing_text_file_is_a_fetch_error_and_a_server_error_is_transient(http_server):
    http_server.routes["/data/upload/gone.txt"] = Reply(status=404)
    http_server.routes["/data/upload/later.txt"] = Reply(status=503)
    loader = text_loader(True, http_server.origin)
    with pytest.raises(ImageError, match="HTTP 404") as gone:
        loader({"doc": "/data/upload/gone.txt"})
    with pytest.raises(ImageError, match="HTTP 503") as later:
        loader({"doc": "/data/upload/later.txt"})
    assert not gone.value.transient and later.value.transient


def test_decode_text_reads_utf8_and_detects_other_encodings():
    assert decode_text(EMAIL.encode()) == EMAIL
    latin = ("Le café est fermé le dimanche. Nous espérons vous revoir bientôt à la réunion de lundi; "
             "merci de confirmer votre présence avant vendredi. Très cordialement, l'équipe.\n") * 3
    assert decode_text(latin.encode("latin-1")) == latin
    assert decode_text(latin.encode("utf-16")) == latin  # the BOM says which
    assert decode_text(latin.encode("utf-16-be")) == latin  # no BOM: the NUL bytes say which
    assert decode_text(latin.encode("utf-16-le")) == latin


@pytest.mark.parametrize("text", ["Привет, как дела", "اليوم تمشينا في الحديقة.", "Ελληνικά κείμενο"],
                         ids=["cyrillic", "arabic", "greek"])
@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_bomless_utf16_in_other_scripts_is_read_from_its_few_nul_bytes(text, encoding):
    """Only the spaces and punctuation have NULs here; Cyrillic and Arabic were refused as binary, and Greek
    came back as CJK mojibake in the other byte order (found by fuzzing, 2026-12-02)."""
    assert decode_text(text.encode(encoding)) == text


@pytest.mark.parametrize("encoding", ["utf-32-le", "utf-32-be", "utf-16-le", "utf-16-be"])
def test_a_byte_order_mark_says_the_encoding_and_a_byte_cut_off_at_the_end_shows_as_a_replacement(encoding):
    bom = {"utf-32-le": codecs.BOM_UTF32_LE, "utf-32-be": codecs.BOM_UTF32_BE,
           "utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}[encoding]
    assert decode_text(bom + "hello".encode(encoding)) == "hello"  # UTF-32-LE was refused as binary
    assert decode_text(bom + "hello".encode(encoding) + b"\n") == "hello\ufffd"  # as a browser shows it


def test_a_utf8_text_with_a_stray_nul_is_still_binary_not_utf16():
    with pytest.raises(TextError, match="NUL bytes"):
        decode_text(b"Hello, world and more words here.\x00 Goodbye now!!")


def test_bomless_utf16_is_read_only_where_the_nul_bytes_sit_on_one_side():
    """UTF-16 without a byte order mark was refused as binary ("NUL bytes"); binary data with NULs on
    both sides still is, and so is a file too short to tell."""
    assert decode_text("Hello, world.\n".encode("utf-16-le")) == "Hello, world.\n"
    with pytest.raises(TextError, match="NUL bytes"):
        decode_text(b"ab\x00\x00cd\x00\x01" * 20)
    with pytest.raises(TextError, match="NUL bytes"):
        decode_text(b"abcdefgh\x00i")  # one NUL in 10 bytes: not UTF-16 text


def test_a_utf8_file_with_one_stray_byte_is_read_as_utf8_not_as_another_encoding():
    """One Latin-1 byte in a UTF-8 file made charset detection read all of it as CP932 mojibake
    ("Cafﾃｩ menu..."), embedded without a word (found by fuzzing, 2026-12-01)."""
    menu = "Café menu: crème brûlée. " * 3
    assert decode_text(menu.encode() + "naïve".encode("latin-1")) == menu + "na\ufffdve"


@pytest.mark.parametrize("payload", [bytes(range(256)) * 8, b"\x89PNG\r\n\x1a\n" + bytes(64)])
def test_decode_text_refuses_binary_data(payload):
    with pytest.raises(TextError, match="not a text file"):
        decode_text(payload)
