"""The words Media RSS puts beside each picture, read from the feed's XML itself.

feedparser (6.0) keeps a ``media:content``'s URL and size, but files its ``media:description``
as the entry's own description (the story's summary, or a text/plain content after it), its
``media:title`` as the entry's title, and every ``media:credit`` of the entry in one list: none
of them says which picture it belongs to. This pass keeps each with its picture.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

_NAMESPACES = ("{http://search.yahoo.com/mrss/}", "{http://search.yahoo.com/mrss}")
_ENTRY_TAGS = frozenset({"item", "entry"})


@dataclass(frozen=True, slots=True)
class MediaText:
    """What the feed says about one picture; may hold markup (``type="html"``)."""

    description: str = ""
    title: str = ""
    credit: str = ""


def media_texts(body: bytes) -> list[dict[str, MediaText]] | None:
    """Per item or entry, in the feed's order: each Media RSS picture's URL → its text.

    None when the feed has no Media RSS, declares entities (the strict parser below would expand
    them: feedparser strips them, this pass refuses them) or is not well-formed XML, which
    feedparser still reads loosely.
    """
    if b"search.yahoo.com/mrss" not in body or b"<!ENTITY" in body:
        return None
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    texts = []
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.rpartition("}")[2] in _ENTRY_TAGS:
            found: dict[str, MediaText] = {}
            _collect(element, MediaText(), found)
            texts.append(found)
    return texts


def _media_name(tag: object) -> str | None:
    if isinstance(tag, str):
        for namespace in _NAMESPACES:
            if tag.startswith(namespace):
                return tag[len(namespace) :]
    return None


def _collect(
    parent: ET.Element, inherited: MediaText, found: dict[str, MediaText], *, groups: bool = True
) -> None:
    """The pictures directly in ``parent`` (an entry or a media:group), into ``found``.

    Media RSS lets an item or a group describe all its pictures at once, and a picture's own
    description, title or credit override theirs.
    """
    around = _own_text(parent, inherited)
    for child in parent:
        name = _media_name(child.tag)
        url = (child.get("url") or "").strip()
        if name in ("content", "thumbnail") and url:
            found.setdefault(url, _own_text(child, around))
        elif name == "group" and groups:
            # Media RSS has no group in a group: a feed nesting thousands must not recurse.
            _collect(child, around, found, groups=False)


def _own_text(element: ET.Element, inherited: MediaText) -> MediaText:
    own = {"description": "", "title": "", "credit": ""}
    for child in element:
        name = _media_name(child.tag)
        if name in own and not own[name]:
            own[name] = "".join(child.itertext()).strip()
    return MediaText(
        own["description"] or inherited.description,
        own["title"] or inherited.title,
        own["credit"] or inherited.credit,
    )
