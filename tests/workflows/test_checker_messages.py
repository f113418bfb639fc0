"""The workflow checker's English findings read in Chinese in the zh-hans admin, and stay as
written in English."""

from __future__ import annotations

import re

import pytest
from django.utils import translation

from workflows.checker_messages import CHECKER_SHAPES, checker_message
from workflows.engine import DefinitionError, parse_definition

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("shape", CHECKER_SHAPES)
def test_every_shape_the_checker_writes_has_a_chinese_translation(shape):
    message = re.sub(r"\{(\w+)\}", "v1", shape)
    with translation.override("zh-hans"):
        translated = checker_message(message)
    assert translated != message
    assert CJK.search(translated) or shape == "{message} ({hints})", translated
    with translation.override("en"):
        assert checker_message(message) == message


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"nodes": []}, "工作流没有节点"),
        (
            {
                "nodes": [
                    {"id": "s", "type": "startNode"},
                    {"id": "e", "type": "endNode"},
                    {"id": "x", "type": "warpNode", "data": {"title": "跳跃"}},
                ],
                "edges": [{"source": "s", "target": "e"}],
            },
            '节点 "x"（跳跃）：未知的节点类型 "warpNode"',
        ),
        (
            {
                "nodes": [{"id": "s", "type": "startNode"}, {"id": "e", "type": "endNode"}],
                "edges": [{"id": "e1", "source": "s", "target": "nowhere"}],
            },
            '连线 "e1" 指向不存在的节点：target "nowhere"',
        ),
    ],
)
def test_real_findings_of_the_checker_are_translated(definition, expected):
    with pytest.raises(DefinitionError) as caught:
        parse_definition(definition)
    with translation.override("zh-hans"):
        assert checker_message(caught.value.message) == expected
