"""Turning the image or text reference in a Label Studio task into pixels or a string.

| task.data[image] | how it is read |
|---|---|
| data:image/...;base64,... | decoded directly |
| /data/local-files/?d=rel/path | from LOCAL_FILES_DOCUMENT_ROOT when set, else GET from Label Studio |
| /data/upload/..., other /paths | GET Label Studio URL + path, with the API token |
| http(s)://... | GET under the fetch policy (token only to Label Studio itself) |
| s3://, gs://, azure-blob:// | GET Label Studio's /tasks/<id>/resolve/?fileuri=..., with auth (proxied, or presigned) |

A `<Text>` field holds the text itself, or with `valueType="url"` a reference to a text
file read exactly as an image reference is (same fetcher, same policy).
"""

from __future__ import annotations

import base64
import posixpath
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

from PIL import Image

from ..core.errors import ImageError, TextError, UrlNotAllowedError
from ..core.fetch import ImageFetcher, is_data_uri, read_local_file
from ..core.images import decode_image
from ..core.texts import decode_text, is_blank

LOCAL_FILES_PREFIX = "/data/local-files/"
C0_AND_SPACE = "".join(map(chr, range(0x21)))  # U+0000 to U+0020
# Label Studio paths that answer with its API (JSON, exports), never with a task's file: a task pointing
# there would be fetched with the backend's API key, and an export path makes Label Studio run an export.
API_PATH_ROOTS = ("api", "api-auth", "django-rq", "admin")
# URI schemes of Label Studio's cloud storages (`url_scheme` of its import storages): only Label Studio
# holds the bucket's credentials, so it resolves them for the task they belong to.
STORAGE_SCHEMES = ("s3", "gs", "azure-blob")


def task_field(data: Mapping, key: str) -> Any:
    """`data[key]`, or for a dotted key Label Studio resolves into nested objects (`$meta.body`) the value
    at that path; None when there is none."""
    if key in data or "." not in key:
        return data.get(key)
    value: Any = data
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _is_api_path(path: str) -> bool:
    segments = posixpath.normpath("/" + unquote(path)).lstrip("/").split("/")
    return segments[0].lower() in API_PATH_ROOTS


class TaskImageLoader:
    """Callable: task data -> RGB image, for one project's image field.

    Parameters
    ----------
    image_key : the task data field that holds the image reference.
    label_studio_url : base URL relative references are resolved against.
    fetcher : does every network read, under its policy.
    auth_headers : returns headers that authenticate to Label Studio (called per fetch,
        so refreshed access tokens are used).
    local_files_root : LOCAL_FILES_DOCUMENT_ROOT when the backend shares Label Studio's disk.
    """

    def __init__(
        self, image_key: str, label_studio_url: str, fetcher: ImageFetcher,
        auth_headers: Callable[[], dict[str, str]] = dict, local_files_root: str | None = None,
    ):
        self.image_key = image_key
        self.label_studio_url = label_studio_url.rstrip("/")
        self.fetcher = fetcher
        self.auth_headers = auth_headers
        self.local_files_root = local_files_root

    def __call__(self, data: Mapping, task_id: int | None = None) -> Image.Image:
        return decode_image(self.read_bytes(data, task_id), self.fetcher.policy.max_pixels)

    def read_bytes(self, data: Mapping, task_id: int | None = None) -> bytes:
        """The file `data`'s field refers to; a cloud-storage URI needs the `task_id` it belongs to."""
        ref = task_field(data, self.image_key)
        if isinstance(ref, list):  # <Image valueList="$images">: a gallery
            raise ImageError(f"task field {self.image_key!r} holds a list of {len(ref)} images: this backend embeds "
                             "one image per task")
        if isinstance(ref, str):
            ref = ref.strip(C0_AND_SPACE)  # what a browser's URL parser strips, and only that
        if not isinstance(ref, str) or not ref:
            raise ImageError(f"task has no image in field {self.image_key!r}")
        if is_data_uri(ref):
            return self.fetcher.fetch(ref)
        try:
            parts = urlsplit(ref)
        except ValueError as exc:  # e.g. "http://[::1/a.png"
            raise UrlNotAllowedError(f"malformed reference {ref[:100]!r}: {exc}") from None
        if ref.startswith(LOCAL_FILES_PREFIX) and self.local_files_root:
            relative = parse_qs(parts.query).get("d", [""])[0]
            if not relative:
                raise ImageError(f"local-files reference without ?d=: {ref[:100]!r}")
            return read_local_file(self.local_files_root, relative, self.fetcher.policy.max_bytes)
        # The fetcher asks for auth headers only if the URL is Label Studio's own.
        if ref.startswith("/") and not ref.startswith("//"):
            if _is_api_path(parts.path):
                raise UrlNotAllowedError(f"{ref[:100]!r} is a path of Label Studio's API, not a file")
            return self.fetcher.fetch(self.label_studio_url + ref, headers=self.auth_headers)
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            return self.fetcher.fetch(ref, headers=self.auth_headers)
        if scheme in STORAGE_SCHEMES:
            return self._read_from_storage(ref, task_id)
        raise UrlNotAllowedError(f"unsupported reference scheme {scheme or '(none)'!r}")

    def _read_from_storage(self, ref: str, task_id: int | None) -> bytes:
        """A cloud-storage file, the way Label Studio's own editor gets it: its resolve endpoint for the task."""
        if task_id is None:
            raise UrlNotAllowedError(f"{ref[:100]!r} is a cloud-storage URI: only Label Studio can read it, for the "
                                     "task it belongs to, and this task came without its id")
        fileuri = base64.urlsafe_b64encode(ref.encode("utf-8", "surrogatepass")).decode()
        url = f"{self.label_studio_url}/tasks/{int(task_id)}/resolve/?fileuri={fileuri}"
        try:
            return self.fetcher.fetch(url, headers=self.auth_headers)
        except UrlNotAllowedError as exc:
            # Label Studio redirects to a presigned URL on the bucket's host, which the fetch policy must allow.
            raise UrlNotAllowedError(
                f"{ref[:100]!r}: Label Studio sent a presigned URL the backend may not fetch ({exc}); add the bucket's "
                "host to IMAGE_HOSTS, or turn off 'Use pre-signed URLs' in the storage's settings so that Label "
                "Studio passes the file on itself") from None


class TaskTextLoader:
    """Callable: task data -> text, for one project's text field.

    Parameters
    ----------
    text_key : the task data field that holds the text (or, with `value_is_url`, its reference).
    value_is_url : the label config's `<Text valueType="url">`: read the file the field points at.
    files : reads references (Label Studio paths, local files, http(s)) under the fetch policy.
    """

    def __init__(self, text_key: str, value_is_url: bool, files: TaskImageLoader):
        self.text_key = text_key
        self.value_is_url = value_is_url
        self.files = files

    def __call__(self, data: Mapping, task_id: int | None = None) -> str:
        value = task_field(data, self.text_key)
        if value is None:
            raise TextError(f"task has no text in field {self.text_key!r}")
        value = _as_text(value, self.text_key)
        if self.value_is_url and value.strip()[:5].lower() == "data:":
            # Label Studio's editor shows a valueType="url" text only from http(s) or a /path: an annotator
            # would get an error box where the text should be, so the task is refused here instead.
            raise TextError(f"task field {self.text_key!r} holds a data: URI, which Label Studio does not show in a "
                            "<Text valueType=\"url\">: put the text in the task itself (and drop valueType), or "
                            "point at a file")
        text = decode_text(self.files.read_bytes(data, task_id)) if self.value_is_url and value.strip() else value
        if is_blank(text):
            raise TextError(f"task text in field {self.text_key!r} is empty (or holds only invisible characters)")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # JSON lets "\ud800" through; no tokenizer takes it
            raise TextError(f"task text in field {self.text_key!r} holds an unpaired surrogate "
                            "(not valid Unicode)") from None
        return text


def _as_text(value: Any, key: str) -> str:
    """A `<Text>` field's value as a string: Label Studio also accepts numbers and lists there (a list shows
    one item per line)."""
    if _shows_as_text(value):
        return str(value)
    if isinstance(value, list) and all(_shows_as_text(v) for v in value):
        return "\n".join(map(str, value))
    raise TextError(f"task field {key!r} holds {type(value).__name__}, not text")


def _shows_as_text(value: Any) -> bool:
    """A string or a number (not a bool, which JSON keeps apart)."""
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)
