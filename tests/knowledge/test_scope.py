"""Which keys may use a knowledge base: a key scoped to it, or a key with no scope at all;
a key limited to bots (or workflows) only is refused."""

from __future__ import annotations

from tests.knowledge.conftest import BILL, PUSH, SEARCH, call, error_of, ok_data


def test_a_key_limited_to_bots_only_gets_403(http, make_key, kb, bot):
    bot_key = make_key(bot_ids=[bot.id])
    body = {"kbId": kb.id, "data": [{"q": "x"}]}
    assert (
        error_of(call(http, PUSH, bot_key, body), 403, "kbId")["statusText"] == "permission_denied"
    )
    error_of(call(http, SEARCH, bot_key, {"kbId": kb.id, "text": "x"}), 403, "kbId")


def test_a_key_scoped_to_a_knowledge_base_uses_it_and_no_other(http, make_key, make_kb):
    mine, other = make_kb(), make_kb()
    key = make_key(knowledge_base_ids=[mine.id])
    assert ok_data(call(http, PUSH, key, {"kbId": mine.id, "data": [{"q": "x"}]})) == {
        "insertLen": 1
    }
    error_of(call(http, PUSH, key, {"kbId": other.id, "data": [{"q": "x"}]}), 403, "kbId")


def test_a_key_without_scope_uses_every_knowledge_base(http, api_key, make_kb):
    for kb in (make_kb(), make_kb()):
        assert ok_data(call(http, SEARCH, api_key, {"kbId": kb.id, "text": "x"})) == []
    assert ok_data(call(http, BILL, api_key, {}))
