"""Text that comes from files is data: make it safe to show on a terminal or in markdown.

Column names, keys, file names and messages that quote them come from whoever wrote
the file.  Before they reach a screen:

* :func:`visible` makes every control character visible as an escape (ESC → ``\\x1b``,
  newline → ``\\n``, DEL and C1 controls likewise, bidi overrides such as U+202E as
  ``\\u202e``), so one line stays one line and no terminal sequence (colours, OSC
  title or hyperlink, cursor moves) is ever emitted raw;
* :func:`escape_markdown` additionally backslash-escapes the markdown characters that
  could form markup (brackets, emphasis, code, HTML, LaTeX ``$``, entities, ``:`` before a
  non-space, the ``.`` after ``www`` and an ``@`` before a dotted domain, and a leading heading/list/quote marker) so that no
  markup and no auto-link (``www.host``, ``http:``, an e-mail address) can form: ``![x](http://host/p.png)`` shows
  as text instead of fetching an image and Streamlit's ``:red[...]`` / ``:material/...:``
  directives stay literal, while ordinary names (``emb.safetensors``, ``runs/lambda-0``,
  ``(float32)``) read unchanged in the source;
* :func:`plotly_text` escapes for Plotly's text, legend names and hover (Plotly renders a
  subset of HTML there: ``<a href>``, ``<b>``, ``<br>``): :func:`visible` text with ``&``,
  ``<``, ``>`` as entities, so a run named ``<a href=...>CLICK`` shows as text, not a link;
* :func:`csv_cell` / :func:`csv_safe_frame` neutralise spreadsheet formulas in CSV exports: a
  text cell starting with ``=``, ``+``, ``-``, ``@`` (or a tab / carriage return, which some
  spreadsheets skip before one) gets a leading ``'`` (OWASP "CSV injection"), so a set named
  ``=HYPERLINK("http://x","y")`` stays text in Excel/LibreOffice/Sheets; numbers are untouched;
* :func:`clip` shortens long text with an ellipsis.
"""
from __future__ import annotations

import re
import unicodedata

__all__ = ["visible", "escape_markdown", "clip", "md", "plotly_text", "csv_cell", "csv_safe_frame"]

# characters made visible: C0 and C1 controls, DEL, and the Unicode format characters
# that reorder or hide text (bidi overrides/isolates, zero-width joiners, BOM)
_FORMAT = {"\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2028", "\u2029", "\u202a", "\u202b", "\u202c",
           "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\ufeff"}
# every control (Cc), format (Cf: bidi marks U+061C / U+202E / U+2066, word joiner U+2060, soft
# hyphen U+00AD, tag characters U+E0000-E007F, BOM), line/paragraph separator, surrogate, private use
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# escaped anywhere: emphasis, code, links/images ([ and ]), raw HTML (< >), strikethrough, LaTeX ($),
# entities (&); ':' only before a non-space (Streamlit's :color[...] / :material/icon: / emoji, autolinks)
# ... and the two auto-links GFM forms without a ':' -- "www." and an e-mail address, whose '@' is
# followed by a domain holding a period (run labels such as "lambda-0.05@200" stay as they are)
_MD_ANYWHERE = re.compile(r"([\\`*_\[\]<>~$&|])|(:)(?=\S)|(?<=[wW]{3})(\.)|(@)(?=[A-Za-z0-9_-]*[.][A-Za-z0-9_-])")
# escaped at the start of the text only: headings, lists, quotes, ordered lists ("1." / "1)")
_MD_LEADING = re.compile(r"^(\s*\d*)([#>+\-=.)])")


def _escape_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text, max_len: int | None = None) -> str:
    """``text`` as one line with every control/format character shown as an escape (``\\x1b``, ``\\n``)."""
    s = text if isinstance(text, str) else str(text)
    out = []
    for ch in s:
        if ch in _FORMAT or unicodedata.category(ch) in _HIDDEN_CATEGORIES:
            out.append(_escape_char(ch))
        else:
            out.append(ch)
    result = "".join(out)
    return clip(result, max_len) if max_len else result


def escape_markdown(text, max_len: int | None = None) -> str:
    """:func:`visible` text with every markdown (and Streamlit directive) character backslash-escaped."""
    s = visible(text, max_len)
    s = _MD_ANYWHERE.sub(lambda m: "\\" + (m.group(1) or m.group(2) or m.group(3) or m.group(4)), s)
    return _MD_LEADING.sub(lambda m: m.group(1) + "\\" + m.group(2), s, count=1)


def md(text, max_len: int | None = 200) -> str:
    """Short name for what pages use: one safe markdown line, clipped to ``max_len`` characters."""
    return escape_markdown(text, max_len)


def plotly_text(text, max_len: int | None = 120) -> str:
    """One safe Plotly label (trace name, hover, annotation): visible, clipped, HTML-escaped."""
    s = visible(text, max_len)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, max_len: int | None) -> str:
    """``text`` cut to ``max_len`` characters with an ellipsis (no cut when ``max_len`` is falsy)."""
    if not max_len or len(text) <= max_len:
        return text
    return text[: max(max_len - 1, 0)] + "…"


_FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A CSV cell that no spreadsheet evaluates: text starting with ``= + - @`` (or tab/CR) gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(_FORMULA_LEAD):
        return "'" + value
    return value


def csv_safe_frame(df):
    """A copy of a pandas DataFrame whose text cells and column names pass through :func:`csv_cell`."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype) in ("string", "str"):
            out[col] = out[col].map(csv_cell)
    out.columns = [csv_cell(c) for c in out.columns]
    return out
