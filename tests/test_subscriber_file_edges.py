"""Subscriber files at the edges the mutation run found untested: encodings, a broken header,
duplicate header columns, over-long addresses after their domain was seen."""

from __future__ import annotations

from pathlib import Path

import pytest
from email_validator import EmailNotValidError

from digest.address import Addresses
from digest.errors import SubscriberError
from digest.subscribers import Problem, Subscriber, check_subscribers, read_subscribers

DESKS = ("Ukraine", "Europe")


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "list.csv"
    path.write_bytes(content)
    return path


def refusal(path: Path) -> SubscriberError:
    with pytest.raises(SubscriberError) as caught:
        list(read_subscribers(path, DESKS))
    assert caught.value.path == path
    return caught.value


# --- encodings --------------------------------------------------------------------------------


def test_a_latin1_byte_on_line_1_is_reported_as_not_utf8_not_as_utf16(tmp_path: Path) -> None:
    path = write(tmp_path, "email,name,désks\nanna@example.org,Anna,\n".encode("latin-1"))
    error = refusal(path)
    assert error.line == 1
    assert str(error) == f"{path}:1: the file is not UTF-8 (byte 0xe9) (save it as “CSV UTF-8”)"


def test_a_line_after_the_first_that_starts_like_a_bom_is_not_called_utf16(tmp_path: Path) -> None:
    path = write(tmp_path, b"email\n\xff\xfeanna@example.org\n")
    error = refusal(path)
    assert error.line == 2
    assert str(error) == f"{path}:2: the file is not UTF-8 (byte 0xff) (save it as “CSV UTF-8”)"


@pytest.mark.parametrize(
    ("encoded", "byte"),
    [
        (b"\xff\xfe" + "email\nanna@example.org\n".encode("utf-16-le"), "0xff"),
        (b"\xfe\xff" + "email\nanna@example.org\n".encode("utf-16-be"), "0xfe"),
    ],
    ids=["little-endian BOM", "big-endian BOM"],
)
def test_a_utf16_file_with_either_bom_is_named_utf16(tmp_path: Path, encoded: bytes, byte: str) -> None:
    path = write(tmp_path, encoded)
    error = refusal(path)
    assert error.line == 1
    assert (
        str(error) == f"{path}:1: the file is not UTF-8 (byte {byte}) (it is UTF-16; save it as “CSV UTF-8”)"
    )


# --- the header row ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b'"email"x,name\nanna@example.org,Anna\n', "',' expected after '\"'"),
        (b'"email,name\nanna@example.org,Anna\n', "unexpected end of data"),
    ],
    ids=["text after a closing quote", "a quote never closed"],
)
def test_a_header_row_that_is_broken_csv_is_reported_on_line_1(
    tmp_path: Path, header: bytes, reason: str
) -> None:
    path = write(tmp_path, header)
    error = refusal(path)
    assert (error.line, error.hint) == (1, None)
    assert error.message == f"the header is not valid CSV ({reason})"
    assert str(error) == f"{path}:1: the header is not valid CSV ({reason})"
    assert error.__suppress_context__


@pytest.mark.parametrize(
    "header",
    ["email,name,Name", "email,desks, DESKS ", "Email,status,email", "email,status,name,status"],
)
def test_a_header_naming_a_column_twice_is_refused(tmp_path: Path, header: str) -> None:
    path = write(tmp_path, f"{header}\nanna@example.org,a,b\n".encode())
    error = refusal(path)
    assert (error.line, error.hint) == (1, "delete one")
    assert error.message == "the header names a column twice"


def test_unknown_and_export_columns_may_repeat(tmp_path: Path) -> None:
    path = write(tmp_path, b"email,notes,notes,source,source\nanna@example.org,,,,\n")
    first, *rest = read_subscribers(path, DESKS)
    assert isinstance(first, Problem) and first.line == 1 and "'notes', 'notes'" in first.message
    assert [entry.email for entry in rest if isinstance(entry, Subscriber)] == ["anna@example.org"]
    report = check_subscribers(path, DESKS)
    assert (report.rows, report.active, report.invalid) == (1, 1, 0)  # the header is not a row


# --- over-long addresses ----------------------------------------------------------------------

LONGEST = "y" * 242 + "@example.org"  # 254 characters: the most an address may have


def test_the_longest_address_passes_and_one_more_character_is_refused_after_its_domain_was_seen() -> None:
    addresses = Addresses()
    assert addresses.normalized("warm@example.org") == "warm@example.org"  # the domain is now known
    assert addresses.normalized(LONGEST) == LONGEST
    for too_long in ("y" + LONGEST, "yy" + LONGEST, "y" * 300 + "@example.org"):
        with pytest.raises(EmailNotValidError, match="too long"):
            addresses.normalized(too_long)


def test_an_over_long_row_is_a_problem_even_when_its_domain_came_before(tmp_path: Path) -> None:
    path = write(tmp_path, f"email\nwarm@example.org\ny{LONGEST}\n{LONGEST}\n".encode())
    warm, too_long, longest = read_subscribers(path, DESKS)
    assert isinstance(warm, Subscriber) and isinstance(longest, Subscriber)
    assert isinstance(too_long, Problem) and too_long.line == 3
    assert "is not a valid email address" in too_long.message and "too long" in too_long.message
