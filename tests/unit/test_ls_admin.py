"""connect_backend's decisions, against a recording stand-in for the SDK client (the real
Label Studio runs it in the e2e and browser suites, where every project still has the
webhook Label Studio made; the branch that makes one again is tested here)."""

from __future__ import annotations

from types import SimpleNamespace

from ml_backend.adapters.ls_admin import connect_backend

URL = "http://127.0.0.1:9090"


class Recorder:
    """The parts of `label_studio_sdk.LabelStudio` that connect_backend calls: records every change."""

    def __init__(self, connections, hooks):
        self.calls = []
        self.ml = SimpleNamespace(list=lambda project: connections, create=self._record("ml.create"),
                                  update=self._record("ml.update"), delete=self._record("ml.delete"))
        self.webhooks = SimpleNamespace(list=lambda project: hooks, create=self._record("webhooks.create"),
                                        delete=self._record("webhooks.delete"))

    def _record(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return SimpleNamespace(id=99)
        return call


def test_a_webhook_made_again_for_a_backend_behind_basic_auth_carries_the_credentials():
    """The webhook Label Studio made with the connection was deleted: connecting again makes one, and with
    BASIC_AUTH on it must carry the header, or every event is refused. This branch raised NameError."""
    client = Recorder([SimpleNamespace(id=5, url=URL, extra_params="{}")], hooks=[])
    connected = connect_backend(client, 1, URL, "title", {"k": 4}, basic_auth=("ml", "pa55"))
    [(_, _, made)] = [c for c in client.calls if c[0] == "webhooks.create"]
    assert made["url"] == f"{URL}/webhook" and made["send_for_all_actions"] is True
    assert made["headers"] == {"Authorization": "Basic bWw6cGE1NQ=="}  # base64 of "ml:pa55"
    assert connected.reused and connected.connection == 5


def test_an_existing_all_actions_webhook_is_kept_and_none_is_made():
    hook = SimpleNamespace(id=7, url=f"{URL}/webhook", actions=[], send_for_all_actions=True, is_active=True, headers={})
    client = Recorder([SimpleNamespace(id=5, url=URL, extra_params="{}")], hooks=[hook])
    connect_backend(client, 1, URL, "title", {}, basic_auth=("ml", "pa55"))
    assert [c[0] for c in client.calls] == ["ml.update"]
