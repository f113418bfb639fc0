"""`markdown_to_safe_html`: what the chat page puts into `innerHTML` can never run script."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from aiflowy.markdown import markdown_to_safe_html


def _elements(html: str) -> list[tuple[str, dict]]:
    found: list[tuple[str, dict]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    Collector().feed(html)
    return found


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](  javascript:alert(1))",
        "![pic](javascript:alert(1))",
        "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "<a href='javascript:alert(1)'>x</a>",
        "<iframe src=https://example.com></iframe>",
        "<svg onload=alert(1)>",
        '[x](https://example.com "a\\" onmouseover=\\"alert(1)")',
        '<div style="background:url(javascript:alert(1))">x</div>',
    ],
)
def test_nothing_in_the_result_can_run_script(text):
    for tag, attributes in _elements(markdown_to_safe_html(text)):
        assert tag in {"p", "a", "img", "code", "pre"}, tag
        assert not any(name.startswith("on") for name in attributes), attributes
        assert "style" not in attributes
        for name in ("href", "src"):
            if name in attributes:
                assert attributes[name].startswith(("https://", "http://")), attributes


def test_markdown_is_rendered_with_code_blocks_tables_and_safe_links():
    html = markdown_to_safe_html(
        "# Title\n\n**bold** `inline`\n\n```python\nprint('<b>')\n```\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n[docs](https://example.com/docs)"
    )
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong> <code>inline</code>" in html
    assert "<pre><code class=\"language-python\">print('&lt;b&gt;')\n</code></pre>" in html
    assert "<td>1</td>" in html
    assert '<a href="https://example.com/docs" rel="noopener noreferrer nofollow">docs</a>' in html
