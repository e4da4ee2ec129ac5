"""Allowlist sanitiser for plugin-provided SVG figures inlined into the HTML report.

The figure is parsed with the standard library's expat parser with every DTD feature refused
(no DOCTYPE, no entity declarations, no external entities: nothing expands), and re-serialised
from scratch keeping only allowlisted SVG elements and attributes:

- elements outside :data:`ELEMENTS` are dropped with everything inside them (``script``,
  ``foreignObject``, ``style``, ``a``, ``animate``/``set``, ``iframe``, ...);
- attributes outside :data:`ATTRIBUTES` are dropped (so every ``on*`` event handler is);
- ``href``/``xlink:href`` may only point inside the figure (``#id``), or for ``<image>`` be an
  inline raster image (``data:image/png|jpeg|gif|webp;base64,...``);
- a ``url(...)`` in any attribute may only be ``url(#id)``; ``style`` values with ``url(``,
  ``expression``, ``@import``, escapes or markup are dropped; any value that reads
  ``javascript:`` (ignoring case, whitespace and control characters) is dropped.

Budgets: at most :data:`MAX_FIGURE_BYTES` of input and :data:`MAX_ELEMENTS` elements; a figure
over budget or not well-formed is replaced by a short note, never inlined.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any
from xml.parsers import expat

MAX_FIGURE_BYTES = 8 * 1024 * 1024
MAX_ELEMENTS = 200_000

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"

ELEMENTS = frozenset({
    "svg", "g", "defs", "title", "desc", "path", "rect", "circle", "ellipse", "line", "polyline",
    "polygon", "text", "tspan", "linearGradient", "radialGradient", "stop", "clipPath", "mask",
    "pattern", "marker", "symbol", "use", "image",
})
ATTRIBUTES = frozenset({
    "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "fx", "fy", "width", "height",
    "d", "points", "transform", "viewBox", "preserveAspectRatio", "version", "id", "class", "role",
    "aria-label", "aria-hidden", "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width",
    "stroke-dasharray", "stroke-dashoffset", "stroke-opacity", "stroke-linecap", "stroke-linejoin",
    "stroke-miterlimit", "opacity", "font-family", "font-size", "font-weight", "font-style",
    "text-anchor", "dominant-baseline", "alignment-baseline", "letter-spacing", "dx", "dy",
    "rotate", "textLength", "lengthAdjust", "offset", "stop-color", "stop-opacity",
    "gradientUnits", "gradientTransform", "spreadMethod", "clip-path", "clip-rule", "mask",
    "clipPathUnits", "maskUnits", "maskContentUnits", "patternUnits", "patternContentUnits",
    "patternTransform", "marker-start", "marker-mid", "marker-end", "markerWidth",
    "markerHeight", "markerUnits", "refX", "refY", "orient", "visibility", "display",
    "shape-rendering", "image-rendering", "text-rendering", "vector-effect", "style", "href",
    "xlink:href", "xmlns", "xmlns:xlink",
})
_LOCAL_REF = re.compile(r"^#[A-Za-z_][\w.:-]*$")
_RASTER = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*$")
_URL = re.compile(r"url\s*\(", re.IGNORECASE)
_LOCAL_URL = re.compile(r"url\(\s*['\"]?#[A-Za-z_][\w.:-]*['\"]?\s*\)", re.IGNORECASE)
_BAD_STYLE = ("expression", "@import", "\\", "<", ">", "behavior", "binding", "javascript")
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]+")


class _Refused(Exception):
    """The figure uses a construct that is never allowed (DTD, entities) or is over budget."""


def _safe_value(element: str, name: str, value: str) -> bool:
    squeezed = _INVISIBLE.sub("", value).lower()
    if "javascript:" in squeezed or "vbscript:" in squeezed:
        return False
    if name in ("href", "xlink:href"):
        return bool(_LOCAL_REF.match(value.strip())) or (
            element == "image" and bool(_RASTER.match(value.strip())))
    if name == "xmlns":
        return value == SVG_NS
    if name == "xmlns:xlink":
        return value == XLINK_NS
    if name == "style":
        return "url(" not in squeezed and not any(b in squeezed for b in _BAD_STYLE)
    return not _URL.search(_LOCAL_URL.sub("", value))


def sanitize_svg(data: bytes) -> str | None:
    """The figure re-serialised with only allowlisted content, or None when it is refused
    (not well-formed, not an ``<svg>`` root, DTD or entities present, over budget)."""
    if len(data) > MAX_FIGURE_BYTES:
        return None
    out: list[str] = []
    kept: list[bool] = []  # one entry per open element: is it being written?
    count = 0

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal count
        count += 1
        if count > MAX_ELEMENTS:
            raise _Refused("too many elements")
        if not kept and name != "svg":
            raise _Refused("the root element is not <svg>")
        keep = (not kept or kept[-1]) and name in ELEMENTS
        kept.append(keep)
        if keep:
            parts = [name]
            for key, value in attrs.items():
                if key in ATTRIBUTES and _safe_value(name, key, value):
                    parts.append(f'{key}="{escape(value, quote=True)}"')
            if not kept[:-1]:  # the root: always in the SVG namespace
                parts = [p for p in parts if not p.startswith("xmlns=")]
                parts.insert(1, f'xmlns="{SVG_NS}"')
            out.append("<" + " ".join(parts) + ">")

    def end(name: str) -> None:
        if kept.pop():
            out.append(f"</{name}>")

    def text(chars: str) -> None:
        if kept and kept[-1]:
            out.append(escape(chars, quote=False))

    def refuse(*_: Any) -> Any:
        raise _Refused("DTDs and entities are not allowed in figures")

    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.SkippedEntityHandler = refuse
    parser.DefaultHandler = lambda _s: None  # comments, processing instructions: dropped
    try:
        parser.Parse(data, True)
    except (_Refused, expat.ExpatError, RecursionError, ValueError):
        return None
    return "".join(out) if out else None
