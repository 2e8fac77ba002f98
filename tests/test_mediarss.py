"""The Media RSS pass over a feed's XML: what it refuses to read, and how it pairs words with pictures."""

from __future__ import annotations

from digest.ingest.mediarss import MediaText, media_texts

HEAD = b'<?xml version="1.0"?>\n'
MRSS = b'xmlns:media="http://search.yahoo.com/mrss/"'


def rss(items: bytes, doctype: bytes = b"") -> bytes:
    return (
        HEAD
        + doctype
        + b"<rss "
        + MRSS
        + b' version="2.0"><channel><title>T</title>'
        + items
        + b"</channel></rss>"
    )


def test_a_feed_without_media_rss_is_not_parsed_again() -> None:
    assert media_texts(b'<rss version="2.0"><channel><item><title>A</title></item></channel></rss>') is None


def test_entity_declarations_are_refused_not_expanded() -> None:
    doctype = b'<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    item = b'<item><media:content url="https://i.example.org/a.jpg"><media:credit>&b;</media:credit></media:content></item>'
    assert media_texts(rss(item, doctype)) is None


def test_xml_that_is_not_well_formed_gives_nothing() -> None:
    assert media_texts(rss(b"<item><media:content url='https://i.example.org/a.jpg'></item>")) is None


def test_each_entry_gets_its_own_pictures_in_order() -> None:
    items = (
        b"<item><title>No picture</title></item>"
        b"<item><media:credit>Item credit</media:credit>"
        b"<media:group><media:description>Group words</media:description>"
        b'<media:content url=" https://i.example.org/b.jpg "><media:title>Own title</media:title></media:content>'
        b'<media:thumbnail url="https://i.example.org/b-thumb.jpg"><media:credit>Own credit</media:credit></media:thumbnail>'
        b"</media:group></item>"
    )
    assert media_texts(rss(items)) == [
        {},
        {
            "https://i.example.org/b.jpg": MediaText("Group words", "Own title", "Item credit"),
            "https://i.example.org/b-thumb.jpg": MediaText("Group words", "", "Own credit"),
        },
    ]


def test_groups_nested_in_groups_are_not_followed() -> None:
    depth = 5000
    nested = (
        b"<media:group>" * depth
        + b'<media:content url="https://i.example.org/deep.jpg"/>'
        + b"</media:group>" * depth
    )
    assert media_texts(rss(b"<item>" + nested + b"</item>")) == [{}]
