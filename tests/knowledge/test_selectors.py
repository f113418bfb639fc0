"""The knowledge base's settings snapshot is cached per process but never stale: an edit of
the knowledge base or of its provider is seen by the next read."""

from __future__ import annotations

from bots.models import LlmProvider
from knowledge.selectors import knowledge_base_config_get


def test_an_edit_of_the_knowledge_base_or_its_provider_is_seen_at_once(provider, make_kb):
    qa = LlmProvider.objects.create(name="qa", base_url="http://127.0.0.1:8/v1", default_model="m")
    kb = make_kb(name="settings", search_limit=5, qa_provider=qa)
    first = knowledge_base_config_get(kb.pk)
    assert first.search_limit == 5
    assert knowledge_base_config_get(kb.pk) is first  # unchanged: the cached snapshot

    kb.search_limit = 7
    kb.save()
    assert knowledge_base_config_get(kb.pk).search_limit == 7

    provider.base_url = "http://127.0.0.1:9/v1"
    provider.save()
    assert knowledge_base_config_get(kb.pk).embedding_provider.base_url == "http://127.0.0.1:9/v1"

    assert knowledge_base_config_get(kb.pk).qa_provider.id == qa.pk
    qa.delete()  # SET_NULL is an UPDATE without `updated_at`: the stamp's join sees it
    assert knowledge_base_config_get(kb.pk).qa_provider.id == provider.pk

    kb.delete()
    assert knowledge_base_config_get(kb.pk) is None
