"""Edition: the window, de-duplication and desks that turn feed items into one list's day."""

from digest.edition.build import assemble, build_edition, edition_window

__all__ = ["assemble", "build_edition", "edition_window"]
