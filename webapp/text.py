"""User text on the page as text, never as Markdown: class names, file names, dataset names,
configs, link parameters and error messages all pass through :func:`md` before any Streamlit
element that renders Markdown (``st.markdown``, ``st.error``, ``st.warning``, titles, ...).

A class named ``![x](https://evil.example/t.png)`` would otherwise make every viewer's browser
fetch that image, and ``[Click to re-login](https://evil.example/login)`` show a phishing link.
"""

from __future__ import annotations

import re

# Inline Markdown: emphasis, code, links and images ([ ] !), HTML (< >), tables (|), strike (~),
# LaTeX ($), and ':' (Streamlit's :material/icon: and :color[text] directives, and the
# "https:" of a bare link, which GitHub-flavoured Markdown would make clickable).
_SPECIAL = re.compile(r"([\\`*_{}\[\]!|<>~$:])")
# Block Markdown can only start a line, and a notice is one line: a heading, list or quote.
_BLOCK_START = re.compile(r"^(\s*)([#>+-]|\d+[.)])")
# GitHub-flavoured Markdown links bare addresses (https://..., www...., mailto:, xmpp:, and
# name@host.tld) even when their characters are escaped (seen in chromium).  An invisible word
# joiner (U+2060) inside the pattern is the one thing that stops it.
_WJ = "\u2060"
_AUTOLINK = re.compile(r"(?i)(?<=[a-z0-9])(?=://)|(?<=\bmailto)(?=:)|(?<=\bxmpp)(?=:)"
                       r"|(?<=\bwww)(?=\.)|(?<=[\w.+-])(?=@[\w-]+\.\w)")


def md(text: object) -> str:
    """``text`` with every Markdown control character escaped, bare web and mail addresses
    broken by an invisible word joiner (never a link), and control characters (ESC, NUL, ...)
    shown as ``\\xNN``; newlines become spaces (one notice, one line)."""
    s = "".join(ch if ch.isprintable() or ch == " " else
                (" " if ch in "\n\r\t" else f"\\x{ord(ch):02x}") for ch in str(text))
    s = _SPECIAL.sub(r"\\\1", _AUTOLINK.sub(_WJ, s))
    return _BLOCK_START.sub(lambda m: m.group(1) + "\\" + m.group(2), s)


def grouped(notices: list[str], *, limit: int = 5) -> str | None:
    """The first ``limit`` notices and a count of the rest, escaped, as one Markdown list (one
    box for a link with 990 bad parameters, not 990 boxes); None when there are none."""
    if not notices:
        return None
    lines = [f"- {md(n)}" for n in notices[:limit]]
    if len(notices) > limit:
        lines.append(f"- … and {len(notices) - limit} more")
    return "\n".join(lines)
