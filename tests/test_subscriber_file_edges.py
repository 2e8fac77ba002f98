"""Subscriber files at the edges the mutation run found untested: encodings, a broken header,
duplicate header columns, over-long addresses after their domain was seen."""

from __future__ import annotations

from pathlib import Path

import pytest
from email_validator import EmailNotValidError

from digest.address import Addresses
from digest.errors import SubscriberError
from digest.subscribers import (
    Problem,
    Subscriber,
    check_subscribers,
    check_utf8,
    is_listed,
    read_fields,
    read_subscribers,
)

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


# --- every message, word for word -------------------------------------------------------------
# What an editor reads is the whole of the fix: a mutation that changes a word must fail here.

ROW_PROBLEMS = [
    (
        "a shifted row",
        "anna@example.org,Smith, Anna",
        "the row has 3 cells but the header has 2 columns; "
        'quote a cell that contains a comma ("Smith, Anna") and give every row all the columns',
    ),
    ("no address", ",Anna", "the email cell is empty; fill in the address or delete the row"),
    (
        "not an address",
        "anna@,Anna",
        "'anna@' is not a valid email address (There must be something after the @-sign); "
        "correct it or delete the row",
    ),
    (
        "a reason with dots inside",
        "anna..b@example.org,Anna",
        "'anna..b@example.org' is not a valid email address (An email address cannot have two periods "
        "in a row); correct it or delete the row",
    ),
]


@pytest.mark.parametrize(
    ("row", "message"), [case[1:] for case in ROW_PROBLEMS], ids=[c[0] for c in ROW_PROBLEMS]
)
def test_each_bad_row_says_exactly_what_to_fix(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, f"email,name\nok@example.org,Ok\n{row}\n".encode())
    problems = [entry for entry in read_subscribers(path, DESKS) if isinstance(entry, Problem)]
    assert [(problem.path, problem.line, problem.message) for problem in problems] == [(path, 3, message)]


def test_an_unknown_desk_names_the_lists_desks(tmp_path: Path) -> None:
    path = write(tmp_path, b"email,desks\nanna@example.org,Europe;Sport\n")
    (problem,) = read_subscribers(path, DESKS)
    assert str(problem) == (
        f"{path}:2: desk 'Sport' is not one of this list's desks (Ukraine, Europe); "
        "fix the spelling, or leave the cell empty for every desk"
    )


def test_an_unknown_column_is_reported_on_the_header_line(tmp_path: Path) -> None:
    path = write(tmp_path, b"email,Phone,name, Fax \nanna@example.org,1,Anna,2\n")
    problem, anna = read_subscribers(path, DESKS)
    assert problem == Problem(
        path, 1, "unknown column(s) 'Phone', 'Fax' ignored; the columns are email, name, desks, status"
    )
    assert isinstance(anna, Subscriber) and anna.name == "Anna"


HEADER_REFUSALS = [
    (
        "an empty file",
        b"",
        "the header row is missing",
        "the first line must be the header row `email,name,desks,status`",
    ),
    (
        "no email column",
        b"name,desks\n",
        "the header row has no `email` column",
        "the first line must be the header row `email,name,desks,status`",
    ),
    (
        "semicolons",
        b"email;name\n",
        "the header row has no `email` column",
        "columns are separated by ';'; save it with commas",
    ),
    (
        "tabs",
        b"email\tname\n",
        "the header row has no `email` column",
        "columns are separated by '\\t'; save it with commas",
    ),
    # A separator inside one of several cells is not the file's separator.
    (
        "a semicolon in one of two cells",
        b"mail;box,name\n",
        "the header row has no `email` column",
        "the first line must be the header row `email,name,desks,status`",
    ),
    (
        "a one-cell header with no separator",
        b"X-Mailbox\n",
        "the header row has no `email` column",
        "the first line must be the header row `email,name,desks,status`",
    ),
]


@pytest.mark.parametrize(
    ("content", "message", "hint"),
    [case[1:] for case in HEADER_REFUSALS],
    ids=[c[0] for c in HEADER_REFUSALS],
)
def test_each_header_refusal_says_what_and_how_to_fix_it(
    tmp_path: Path, content: bytes, message: str, hint: str
) -> None:
    refused = refusal(write(tmp_path, content))
    assert (refused.message, refused.line, refused.hint) == (message, 1, hint)


def test_a_file_that_cannot_be_opened_says_where_to_look(tmp_path: Path) -> None:
    refused = refusal(tmp_path / "missing.csv")
    assert refused.message == "cannot open the file: No such file or directory"
    assert refused.hint == "check the list's `subscribers` path in config.toml and that the file is readable"


def test_a_file_that_changes_after_its_utf8_check_stops_the_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import digest.subscribers as subscribers

    # As if the bad byte arrived between the check and the read: in the first block read (with
    # the header) or further on.
    monkeypatch.setattr(subscribers, "_check_utf8", lambda raw, path: None)
    for rows in (0, 2000):
        body = b"email\n" + b"anna@example.org\n" * rows + b"b\xe9@example.org\n"
        refused = refusal(write(tmp_path, body))
        assert refused.message.startswith("cannot read the file: 'utf-8' codec can't decode byte 0xe9")
        assert refused.hint == "check the file and try again"


def test_a_reader_told_the_file_was_checked_reads_it_once(tmp_path: Path) -> None:
    # The read-ahead's parent checks the file while its child reads it (digest.readahead).
    path = write(tmp_path, b"email\n" + b"anna@example.org\n" * 2000 + b"b\xe9@example.org\n")
    entries = read_fields(path, DESKS, checked=True)
    assert next(entries) == ("anna@example.org", "anna@example.org", "", None, "active", 2)
    with pytest.raises(SubscriberError) as unread:
        list(entries)
    assert unread.value.message.startswith("cannot read the file: 'utf-8' codec can't decode byte 0xe9")
    with pytest.raises(SubscriberError) as caught:
        check_utf8(path)
    assert (caught.value.message, caught.value.path, caught.value.line) == (
        "the file is not UTF-8 (byte 0xe9)",
        path,
        2002,
    )
    with pytest.raises(SubscriberError) as unopened:
        check_utf8(tmp_path / "missing.csv")
    assert unopened.value.message.startswith("cannot open the file")


# --- is_listed: `subscribers unsubscribe` warns about an address the file does not have ----------


def test_is_listed_finds_only_a_valid_row_with_the_folded_address(tmp_path: Path) -> None:
    path = write(tmp_path, b"email,desks\nAnna@Example.org,\nboris@example.org,Sport\n")
    assert is_listed(path, "anna@example.org", DESKS)
    assert not is_listed(path, "olena@example.org", DESKS)
    assert not is_listed(path, "boris@example.org", DESKS)  # its row is a Problem (unknown desk)
    assert is_listed(path, "boris@example.org", ("Sport",))  # a valid row for a list with that desk
