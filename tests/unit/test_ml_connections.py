"""Recognising one backend behind differently spelled URLs, and webhooks that repeat events."""

from __future__ import annotations

import pytest

from ml_backend.adapters.ml_connections import (
    BackendIdentity, Hook, hooks_to, load_instance_id, normalized_url, repeated_actions, same_backend,
)


@pytest.mark.parametrize("a, b", [
    ("http://127.0.0.1:9090", "http://localhost:9090/"),
    ("http://LOCALHOST:9090", "http://[::1]:9090"),
    ("http://0.0.0.0:9090/", "http://127.0.0.2:9090"),
    ("http://ml-backend:80", "http://ml-backend"),
    ("https://ml.example.com/", "HTTPS://ml.example.com:443"),
    ("http://host:9090/prefix/", "http://host:9090/prefix"),
])
def test_spellings_of_one_url_normalise_alike(a, b):
    assert normalized_url(a) == normalized_url(b)


@pytest.mark.parametrize("a, b", [
    ("http://127.0.0.1:9090", "http://127.0.0.1:9091"),
    ("http://127.0.0.1:9090", "https://127.0.0.1:9090"),
    ("http://ml-a:9090", "http://ml-b:9090"),
    ("http://host:9090/a", "http://host:9090/b"),
])
def test_different_backends_stay_apart(a, b):
    assert normalized_url(a) != normalized_url(b)


def test_same_backend_asks_health_when_the_urls_differ():
    ids = {"http://10.0.0.5:9090": "abc", "http://ml-backend:9090": "abc", "http://other:9090": "xyz"}
    probe = ids.get
    assert same_backend("http://10.0.0.5:9090", "http://ml-backend:9090", probe)
    assert not same_backend("http://10.0.0.5:9090", "http://other:9090", probe)
    assert not same_backend("http://unknown:1", "http://unknown:2", probe)  # neither answers: not the same


def test_identity_knows_its_own_url_without_probing_and_caches_probes():
    calls = []

    def probe(url):
        calls.append(url)
        return "me" if "backend" in url else None

    identity = BackendIdentity("me", "http://127.0.0.1:9090", probe=probe)
    assert identity.is_me("http://localhost:9090/") and calls == []
    assert identity.is_me("http://backend:9090") and identity.is_me("http://backend:9090/")
    assert not identity.is_me("http://elsewhere:9090") and not identity.is_me("http://elsewhere:9090")
    # An answer is kept; no answer (unreachable, perhaps not listening yet) is asked again.
    assert calls == ["http://backend:9090", "http://elsewhere:9090", "http://elsewhere:9090"]


def test_identity_keeps_a_definite_no():
    calls = []
    identity = BackendIdentity("me", None, probe=lambda url: calls.append(url) or "someone-else")
    assert not identity.is_me("http://other:1") and not identity.is_me("http://other:1")
    assert calls == ["http://other:1"]


def test_instance_id_survives_a_restart(tmp_path):
    first = load_instance_id(tmp_path)
    assert len(first) == 16 and load_instance_id(tmp_path) == first


def hook(id, url, actions=(), all_actions=True, active=True):
    return Hook(id, url, tuple(actions), all_actions, active)


def test_hooks_to_a_backend_match_any_spelling_and_nothing_else():
    hooks = [hook(1, "http://127.0.0.1:9090/webhook"), hook(2, "http://localhost:9090/webhook/"),
             hook(3, "http://127.0.0.1:9091/webhook"), hook(4, "http://127.0.0.1:9090/other")]
    assert [h.id for h in hooks_to(["http://localhost:9090"], hooks)] == [1, 2]


def test_repeated_actions_counts_only_active_hooks_covering_the_action():
    hooks = [hook(1, "u"), hook(2, "u", ["TASKS_CREATED"], all_actions=False), hook(3, "u", active=False)]
    assert repeated_actions(hooks, ["TASKS_CREATED", "ANNOTATION_CREATED"]) == {"TASKS_CREATED": 2}
    assert repeated_actions(hooks[:1], ["TASKS_CREATED"]) == {}
