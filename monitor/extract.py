"""HTML → canonical text: one block (heading, paragraph, list item, table row) per line.

The canonical text is what gets stored and compared, so it must be stable (the same page
always gives the same text, whatever its markup or whitespace) and read well in a diff:
headings start with `#`, list items with `- `, table cells are joined with ` | `, and links
keep their text followed by their normalised target in angle brackets.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from isal import isal_zlib
from lxml import etree
from lxml.cssselect import CSSSelector, SelectorError

if TYPE_CHECKING:
    from monitor.targets import PageDecl

# 2: the walk reads lxml's own tree (BeautifulSoup's costs fifteen times more to build), and
# text after `</html>` is read. 3: script and style bodies are emptied before parsing
# (`hollow`). A page that reads differently re-baselines quietly.
EXTRACTOR_VERSION = "3"

Element = etree._Element
_DROPPED = "monitor-dropped"  # marks elements on their way out of the tree

# Elements that never carry readable page text (and closed dialogs, below).
_DROP_TAGS = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "canvas",
        "iframe",
        "object",
        "embed",
        "head",
        "meta",
        "link",
        "audio",
        "video",
        "picture",
        "img",
        "map",
    }
)
# Inline styles that hide an element, as pages write them.
_HIDING_STYLES = ("display:none", "display: none", "visibility:hidden", "visibility: hidden")
# Consent-manager banners and cookie notices (OneTrust, Cookiebot, TrustArc, Didomi,
# Usercentrics, Quantcast, Osano, Termly, Klaro, generic cookie bars).
_CONSENT = re.compile(
    r"onetrust|optanon|cookiebot|cybotcookiebot|truste|trustarc|didomi|usercentrics|"
    r"qc-cmp|quantcast-choice|osano|termly|klaro|cookie[-_]?(banner|consent|notice|bar|law|policy-banner)|"
    r"consent[-_]?(banner|manager|modal)|cc-window|cc-banner|gdpr[-_]?banner|cmp[-_]?(container|banner)",
    re.IGNORECASE,
)
# Site chrome dropped when the page declares no `select`.
_CHROME_TAGS = frozenset({"nav", "aside"})
_CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "complementary"})
_BLOCKS = frozenset(
    {
        "address",
        "article",
        "blockquote",
        "body",
        "caption",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "html",
        "legend",
        "li",
        "main",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
        "label",
        "option",
        "select",
        "button",
    }
)
_HEADINGS = {f"h{level}": "#" * level for level in range(1, 7)}
_TRACKING_PARAMS = re.compile(
    r"^(utm_\w+|gclid|fbclid|msclkid|mc_cid|mc_eid|_ga|_gl|ref_src|igshid)$"
)
# Zero-width characters go; curly quotes and dashes become plain ones.
_PLAIN = str.maketrans(
    {
        **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff\u00ad", None),
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
    }
)
_JS_WALL = re.compile(
    r"(enable|turn on|requires?|need)\W+(your\s+)?javascript"
    r"|javascript\W+(is\s+)?(required|disabled)",
    re.IGNORECASE,
)


# The text of an element that a reader could see: not what sits in a template (inert until a
# script uses it), a script or a style sheet.
_LIVE_TEXT = etree.XPath(
    "descendant::text()[not(ancestor::template or ancestor::script or ancestor::style)]"
)


class SelectorMissing(Exception):
    """The page's `select` selector matched nothing: the page's structure moved."""

    def __init__(self, selector: str):
        self.selector = selector
        super().__init__(f"select {selector!r} matches nothing")


@dataclass(frozen=True)
class Extraction:
    text: str
    script_wall: bool = False  # the HTML says it needs JavaScript, or holds scripts and no text

    @property
    def blocks(self) -> list[str]:
        return self.text.splitlines()


def normalise_text(text: str) -> str:
    """Unicode-normalise one block: NFKC, no zero-width characters, plain quotes and dashes,
    single spaces."""
    if not text.isascii():  # all of these leave plain ASCII as it is
        text = unicodedata.normalize("NFKC", text).translate(_PLAIN)
    return " ".join(text.split())


def normalise_url(href: str, base: str) -> str | None:
    """Absolute URL without fragment, default port or tracking parameters; None when the
    link leads nowhere (in-page anchors, javascript:)."""
    href = href.strip()
    if not href or href.startswith("#") or href.lower().startswith(("javascript:", "data:")):
        return None
    try:
        parts = urlsplit(urljoin(base, href))
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme in ("mailto", "tel"):
        return f"{scheme}:{parts.path}"
    if scheme not in ("http", "https"):
        return None
    host = (parts.hostname or "").lower()
    if parts.port and not (
        (scheme == "http" and parts.port == 80) or (scheme == "https" and parts.port == 443)
    ):
        host = f"{host}:{parts.port}"
    query = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not _TRACKING_PARAMS.match(k)
        ]
    )
    return urlunsplit((scheme, host, parts.path or "/", query, ""))


# libxml2 drops all that follows `</html>` and sets what follows `</body>` outside the body;
# a browser shows both in the body, and so does extraction once these end tags are gone.
_DOCUMENT_END_TAGS = re.compile(rb"</(?:html|body)(?:\s[^>]*)?>", re.IGNORECASE)
# Where the tokenizer leaves plain markup: a comment, or an element whose body it reads as
# plain text up to the element's own end tag.
_STEPPED_OVER = (b"textarea", b"title", b"xmp", b"iframe", b"noembed", b"noframes", b"plaintext")
_HOLLOWED = (b"script", b"style")
_RAW_TOKEN = re.compile(
    rb"<(!--|/?(?:" + b"|".join(_HOLLOWED + _STEPPED_OVER) + rb")(?=[\s/>]))", re.IGNORECASE
)
_RAW_START_TAG = re.compile(
    rb"""<[a-z]+(?:\s+[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*\s*/?>""",
    re.IGNORECASE,
)
_RAW_END_TAG = {
    name: re.compile(rb"</" + name + rb"[\s/>]", re.IGNORECASE) for name in _STEPPED_OVER
}


def hollow(data: bytes) -> bytes:
    """The page with the bodies of its scripts and style sheets emptied: extraction never
    reads them, and on a modern page they are most of the bytes (parsing them took three
    quarters of libxml2's time on the bench's help-centre pages). Comments and the bodies of
    textareas, titles and such are stepped over, and so is a `<script>` that follows a `<`
    with no `>` since (written in an attribute's value). Conservative: a body is emptied only
    when the next such tag after its start is its own end tag, so that a script holding a
    comment (which can move where it ends) or another such tag is read on as it is."""
    parts: list[bytes] = []
    kept = position = 0
    while (token := _RAW_TOKEN.search(data, position)) is not None:
        name = token.group(1).lower()
        if name == b"!--":
            position = data.find(b"-->", token.end())
            if position < 0:
                break
            continue
        start = _RAW_START_TAG.match(data, token.start())
        inside_a_tag = data.rfind(b"<", 0, token.start()) > data.rfind(b">", 0, token.start())
        if start is None or inside_a_tag:  # an end tag, an attribute's value, or no tag at all
            position = token.end()
            continue
        if name in _STEPPED_OVER:
            end = _RAW_END_TAG[name].search(data, start.end())
            if end is None:  # the rest of the page is its text
                break
            position = end.end()
            continue
        following = _RAW_TOKEN.search(data, start.end())
        if following is None:
            break
        if following.group(1).lower() == b"/" + name:
            parts.append(data[kept : start.end()])
            kept = following.start()
            position = following.end()
        else:
            position = start.end()
    if not parts:
        return data
    parts.append(data[kept:])
    return b"".join(parts)


def source(html: str) -> bytes:
    """The page as extraction reads it, and as a version keeps it: UTF-8 (so that a
    `<meta charset>` or XML declaration in it cannot make the parser decode it again),
    `hollow`, without the document's end tags. Reading it gives the page's own text, and
    so does reading it again."""
    return _DOCUMENT_END_TAGS.sub(b"", hollow(html.encode("utf-8", "replace")))


def parse(html: str | bytes) -> Element | None:
    """lxml's tree of a page (its `source`, when not given one), None when the page holds
    no element."""
    data = source(html) if isinstance(html, str) else html
    parser = etree.HTMLParser(encoding="utf-8", huge_tree=True)  # 2,048 levels, not 256
    root = etree.fromstring(data, parser)
    if any(error.type == etree.ErrorTypes.ERR_RESOURCE_LIMIT for error in parser.error_log):
        # Deeper than that, libxml2's tree drops the rest of the page.
        return etree.fromstring(data, etree.HTMLParser(encoding="utf-8", target=_DeepTree()))
    return root


class _DeepTree(etree.TreeBuilder):
    """Builds a tree of any depth from the parser's events, closing at the end of the page
    the elements it leaves open. Slower than libxml2's own tree: only for such pages."""

    def __init__(self) -> None:
        super().__init__()
        self._open: list[str] = []

    def start(self, tag: str, attrs: dict[str, str], nsmap: object = None) -> Element:
        self._open.append(tag)
        return super().start(tag, attrs)

    def end(self, tag: str) -> Element:
        self._open.pop()
        return super().end(tag)

    def close(self) -> Element:
        while self._open:
            self.end(self._open[-1])
        return super().close()


@lru_cache(maxsize=512)
def css(selector: str) -> Callable[[Element], list[Element]]:
    """A CSS selector compiled once (to XPath, by cssselect): called on an element, it
    returns the matching elements at or under it, in page order. Raises ValueError naming
    the selector when it cannot be read."""
    try:
        return CSSSelector(selector, translator="html")
    except SelectorError as exc:
        raise ValueError(f"{selector!r} is not a valid CSS selector: {exc}") from exc


def count_matches(root: Element | None, selector: str) -> int:
    """How many elements of a parsed page (`parse`) the selector matches."""
    return 0 if root is None else len(css(selector)(root))


def extract(
    html: str | bytes,
    *,
    base_url: str,
    select: str | None = None,
    remove: tuple[str, ...] = (),
    ignore: tuple[str, ...] = (),
) -> Extraction:
    """Canonical text of a page (its HTML, or its `source`). Raises SelectorMissing when
    `select` matches nothing."""
    root = parse(html)
    if root is None:
        if select:
            raise SelectorMissing(select)
        return Extraction(text="")
    base_href = next((base.get("href") for base in root.iter("base") if base.get("href")), None)
    if base_href:
        base_url = urljoin(base_url, base_href)
    had_scripts = next(root.iter("script"), None) is not None
    noscript_wall = any(
        _JS_WALL.search(" ".join(_LIVE_TEXT(element))) for element in root.iter("noscript")
    )
    # The elements never read go in one pass of lxml's, with all inside them (an icon
    # sprite can be half a page's elements); one walk over the rest serves every question
    # below: a selector pass per question costs far more.
    etree.strip_elements(root, *_DROP_TAGS, with_tail=False)
    elements = list(root.iter(etree.Element))
    _drop(root, [element for element in elements if _never_read(element)])
    for selector in remove:
        _drop(root, css(selector)(root))
    if select:
        roots = css(select)(root)
        if not roots:
            raise SelectorMissing(select)
    else:
        _drop(root, [element for element in elements if _is_chrome(element)])
        _drop(
            root,
            [
                element
                for element in elements
                if element.tag in ("header", "footer")
                and not _inside(element, ("main", "article", "section"))
            ],
        )
        body = root.find("body")
        roots = [root if body is None else body]
    writer = _BlockWriter(base_url)
    for element in roots:
        writer.walk(element)
        writer.flush()
    lines = _apply_ignore(writer.lines, ignore)
    text = "\n".join(lines)
    script_wall = (noscript_wall or had_scripts) and len(text) < 200
    return Extraction(text=text, script_wall=script_wall)


def _drop(root: Element, elements: Iterable[Element]) -> None:
    """Take elements (and all inside them) out of the tree, keeping the text that follows
    each: they are marked, then stripped by lxml in one pass that leaves that text where it
    was (setting it anew through the API would refuse the control characters pages hold)."""
    marked = False
    for element in elements:
        if element is root:
            root.clear()
            return
        element.tag = _DROPPED
        marked = True
    if marked:
        etree.strip_elements(root, _DROPPED, with_tail=False)


def _inside(element: Element, names: tuple[str, ...]) -> bool:
    return any(ancestor.tag in names for ancestor in element.iterancestors())


def _never_read(element: Element) -> bool:
    """Elements without readable text, besides `_DROP_TAGS`: hidden elements, closed dialogs
    and consent banners. One pass of plain checks: CSS selectors cost several times more."""
    name, attrs = element.tag, element.attrib
    if name == "dialog" and "open" not in attrs:
        return True
    if not attrs:
        return False
    if "hidden" in attrs or attrs.get("aria-hidden") == "true":
        return True
    if name == "input" and attrs.get("type", "").lower() == "hidden":
        return True
    style = attrs.get("style")
    if style and any(hiding in style for hiding in _HIDING_STYLES):
        return True
    return _is_consent_banner(element)


def _is_chrome(element: Element) -> bool:
    return element.tag in _CHROME_TAGS or element.get("role") in _CHROME_ROLES


def _is_consent_banner(element: Element) -> bool:
    if element.tag in ("html", "body", "main", "article"):
        return False
    ident = f"{element.get('id', '')} {element.get('class', '')}"
    return bool(ident.strip()) and _CONSENT.search(ident) is not None


def _apply_ignore(lines: list[str], patterns: tuple[str, ...]) -> list[str]:
    if not patterns:
        return lines
    compiled = [re.compile(pattern) for pattern in patterns]
    kept = []
    for line in lines:
        for regex in compiled:
            line = regex.sub(" ", line)
        line = " ".join(line.split())
        if line and line not in ("-", "#") and line.strip("#- ") != "":
            kept.append(line)
    return kept


@dataclass
class _Link:
    """Where a link's text started, to append its target when the link ends."""

    parts_at: int
    flushes_at: int


class _BlockWriter:
    """Walks a tree and writes one line per block element, with inline text joined.

    The walk keeps its own stack (no recursion), so documents nested thousands of levels
    deep are read like any other."""

    def __init__(self, base_url: str, *, in_cell: bool = False) -> None:
        self.base_url = base_url
        self.in_cell = in_cell
        self.lines: list[str] = []
        self._parts: list[str] = []
        self._prefix = ""
        self._flushes = 0

    def flush(self) -> None:
        text = normalise_text("".join(self._parts))
        self._parts = []
        self._flushes += 1
        if text:
            self.lines.append(f"{self._prefix}{text}")
            self._prefix = ""

    def walk(self, root: Element) -> None:
        """Read what is inside `root` (its text and children, not the text after it)."""
        if root.text:
            self._parts.append(root.text)
        stack: list[tuple[Element, _Link | bool | None]] = [
            (child, None) for child in reversed(root)
        ]
        while stack:
            node, leaving = stack.pop()
            if leaving is not None:
                self._leave(node, leaving)
            elif isinstance(node.tag, str) and (state := self._enter(node)) is not None:
                stack.append((node, state))
                if node.text:
                    self._parts.append(node.text)
                stack.extend((child, None) for child in reversed(node))
                continue
            # Done with the node (left it, skipped it, or a comment): the text after it.
            if node.tail:
                self._parts.append(node.tail)

    def _enter(self, tag: Element) -> _Link | bool | None:
        """Handle the start of an element; None when its children are not to be walked."""
        name = tag.tag
        if name == "br":
            self._parts.append(" ")
        elif name == "input":
            self._parts.append(f" {_control_text(tag)} ")
        elif name == "tr" and not self.in_cell:  # a table inside a cell is read as blocks
            self.flush()
            cells = [_cell_text(cell, self.base_url) for cell in tag if cell.tag in ("td", "th")]
            row = " | ".join(cell for cell in cells if cell)
            if row:
                self.lines.append(row)
        elif name == "a":
            return _Link(len(self._parts), self._flushes)
        elif name in _BLOCKS:
            self.flush()
            if name in _HEADINGS:
                self._prefix = _HEADINGS[name] + " "
            elif name in ("li", "dd"):
                self._prefix = "- "
            return True
        else:
            return False
        return None

    def _leave(self, tag: Element, state: _Link | bool) -> None:
        if isinstance(state, _Link):
            self._end_link(tag, state)
            return
        self._toggle_state(tag)
        if state:  # a block ends its line
            self.flush()

    def _end_link(self, tag: Element, start: _Link) -> None:
        url = normalise_url(tag.get("href", ""), self.base_url)
        if not url:
            return
        if self._flushes == start.flushes_at:
            if normalise_text("".join(self._parts[start.parts_at :])):
                self._parts.append(f" <{url}>")
        elif self.lines:  # the link held blocks: its target goes with its last line
            self.lines[-1] += f" <{url}>"

    def _toggle_state(self, tag: Element) -> None:
        """A switch's on/off state is part of what a settings page says."""
        checked = tag.get("aria-checked")
        if tag.get("role") in ("switch", "checkbox") and checked in ("true", "false"):
            self._parts.append(" [on] " if checked == "true" else " [off] ")


def _cell_text(cell: Element, base_url: str) -> str:
    writer = _BlockWriter(base_url, in_cell=True)
    writer.walk(cell)
    writer.flush()
    return " ".join(writer.lines)


def _control_text(tag: Element) -> str:
    kind = tag.get("type", "text").lower()
    label = normalise_text(tag.get("aria-label", ""))
    if kind in ("checkbox", "radio"):
        state = "[on]" if "checked" in tag.attrib else "[off]"
        return f"{label} {state}".strip()
    if kind in ("submit", "button"):
        return normalise_text(tag.get("value", "")) or label
    return label


def fingerprint(decl: PageDecl) -> str:
    """Everything that shapes a page's text: its extraction rules, fetch mode and this
    extractor's version. A different fingerprint means the same page may read differently."""
    rules = {
        "select": decl.select,
        "remove": list(decl.remove),
        "ignore": list(decl.ignore),
        "fetch": decl.fetch,
        "extractor": EXTRACTOR_VERSION,
    }
    return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()[:32]


def compress(page_source: bytes) -> bytes:
    """zlib's format, written by ISA-L at its level 1: three times faster than zlib's own
    fastest level for as many bytes, and read back by any zlib (captures stored before are
    read the same way)."""
    return isal_zlib.compress(page_source, 1)


def decompress(capture: bytes) -> str:
    return isal_zlib.decompress(capture).decode()
