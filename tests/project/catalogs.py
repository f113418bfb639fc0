"""Reading the project's gettext catalogs (`*/locale/zh_Hans/LC_MESSAGES/*.po`) in tests.

Entries are told apart by their keywords, not by blank lines: merged catalogs can have
entries back to back, and gettext reads those fine, so the tests must too."""

from __future__ import annotations

import re
from pathlib import Path

STRING = re.compile(r'^"(.*)"$')
KEYWORD = re.compile(r"^(msgctxt|msgid|msgid_plural|msgstr|msgstr\[\d+\]) (.*)$")


def _unquote(parts: list[str]) -> str:
    text = "".join(STRING.match(part).group(1) for part in parts)
    return text.replace('\\"', '"').replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\")


def po_entries(path: Path) -> dict[str, str | None]:
    """msgid → its translation: the msgstr (the first plural form for a plural entry, or ""
    when a form is missing), or None when it is fuzzy. Obsolete (#~) entries are left out."""
    entries: dict[str, str | None] = {}
    current: dict[str, list[str]] = {}
    fuzzy = False
    keyword = ""

    def close() -> None:
        if current.get("msgid") and "".join(current["msgid"]) != '""':
            msgid = _unquote(current["msgid"])
            forms = [_unquote(v) for k, v in current.items() if k.startswith("msgstr")]
            entries[msgid] = None if fuzzy else (forms[0] if forms and all(forms) else "")

    for line in path.read_text("utf-8").splitlines():
        line = line.strip()
        match = KEYWORD.match(line)
        starts_entry = line == "" or line.startswith("#") or (match and match[1] == "msgctxt")
        starts_entry = starts_entry or bool(match and match[1] == "msgid")
        if starts_entry and any(k.startswith("msgstr") for k in current):
            close()
            current, fuzzy, keyword = {}, False, ""
        if line.startswith("#,") and "fuzzy" in line:
            fuzzy = True
        elif match:
            keyword = match[1]
            current[keyword] = [match[2]]
        elif line.startswith('"') and keyword:
            current[keyword].append(line)
    close()
    return entries
