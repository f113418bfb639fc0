"""Markdown from models and users, as HTML that is safe to put into a page.

Two layers, so that neither alone has to be perfect: markdown-it-py renders CommonMark with
raw HTML switched off (a `<script>` in the text comes out as the visible text `<script>`)
and drops links whose scheme it deems dangerous (`javascript:`, `vbscript:`, `data:` other
than images); then nh3 (the Ammonia sanitiser) keeps only an allow-list of tags and
attributes, only http/https/mailto URLs, and adds `rel="noopener noreferrer nofollow"` to
links. Nothing in the result can run script; the pages that show it also send a strict
Content-Security-Policy.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

_renderer = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(
    ["table", "strikethrough"]
)

ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "img", "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr",
    "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "code": {"class"},
    "ol": {"start"},
}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


def markdown_to_safe_html(text: str) -> str:
    """`text` rendered as Markdown and sanitised: fit for `innerHTML`."""
    return nh3.clean(
        _renderer.render(text),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
