"""Subscriber CSVs: every row becomes a Subscriber or a Problem at its physical line; unreadable files raise."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from email_validator import EmailNotValidError, validate_email
from email_validator.syntax import validate_email_local_part

from digest.address import Addresses
from digest.errors import SubscriberError
from digest.subscribers import (
    KNOWN_DESK_CELLS,
    MAX_PROBLEMS,
    CheckReport,
    Problem,
    Status,
    Subscriber,
    _header,
    check_subscribers,
    format_check,
    read_subscribers,
    unique_subscribers,
)

REPO = Path(__file__).resolve().parent.parent
DESKS = ("Ukraine", "North America", "Business", "Europe", "Culture")
HEADER = "email,name,desks,status\n"


def S(
    email: str,
    line: int,
    *,
    name: str = "",
    desks: tuple[str, ...] | None = None,
    status: Status = "active",
    key: str | None = None,
) -> Subscriber:
    """The Subscriber expected from a row (``key`` defaults to the folded address)."""
    return Subscriber(email, key or email.casefold(), name, desks, status, line)


def P(line: int, *fragments: str) -> tuple[int, tuple[str, ...]]:
    """A Problem expected on ``line`` whose message contains every fragment."""
    return line, fragments


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "list.csv"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


CASES = [
    # (what it shows, file content, expected Subscribers and P(line, fragments) in order)
    (
        "the BOM a spreadsheet writes is accepted",
        "\ufeffemail,name\nanna@example.org,Anna\n",
        [S("anna@example.org", 2, name="Anna")],
    ),
    (
        "header names are case-insensitive and stripped",
        " EMAIL , Name \nanna@example.org,Anna\n",
        [S("anna@example.org", 2, name="Anna")],
    ),
    (
        "stray whitespace in every cell is stripped, name whitespace folded",
        HEADER + "  anna@example.org  ,  Anna \t  Smith  ,  Ukraine ; Europe  ,  active  \n",
        [S("anna@example.org", 2, name="Anna Smith", desks=("Ukraine", "Europe"))],
    ),
    (
        "control characters leave the name (it goes into a To header)",
        HEADER + 'anna@example.org,"Anna\x07 Smith\u202e\r\nBcc: x",,\n',
        [S("anna@example.org", 2, name="Anna Smith Bcc: x")],
    ),
    (
        "the domain is lower-cased, the local part kept, the key folded",
        "email\nAnna.Smith@EXAMPLE.ORG\n",
        [S("Anna.Smith@example.org", 2, key="anna.smith@example.org")],
    ),
    (
        "a punycode domain comes back in Unicode",
        "email\nanna@xn--bcher-kva.example\n",
        [S("anna@bücher.example", 2)],
    ),
    (
        "a decomposed local part is NFC-normalized",
        "email\nA\u0308nna@example.org\n",
        [S("\u00c4nna@example.org", 2)],
    ),
    (
        "invalid addresses are reported at their own line",
        "email\nanna.example.org\nbob@example.org\nbad address@example.org\ncarl@@example.org\ndana@x@example.org\n",
        [
            P(2, "'anna.example.org'", "@-sign", "correct it or delete the row"),
            S("bob@example.org", 3),
            P(4, "'bad address@example.org'", "SPACE"),
            P(5, "'carl@@example.org'"),
            P(6, "'dana@x@example.org'"),
        ],
    ),
    ("an empty email cell", HEADER + ",Anna,,\n", [P(2, "email cell is empty")]),
    ("a reserved test domain is refused", "email\nanna@example.test\n", [P(2, "special-use or reserved")]),
    (
        "desks come back in the list's order, matched case-insensitively",
        HEADER
        + "anna@example.org,,culture;UKRAINE;north america,\nbob@example.org,,Europe;europe;,\ncarl@example.org,,;,\n",
        [
            S("anna@example.org", 2, desks=("Ukraine", "North America", "Culture")),
            S("bob@example.org", 3, desks=("Europe",)),
            S("carl@example.org", 4),
        ],
    ),
    (
        "a desk not in the list skips the row and names the list's desks",
        HEADER + "anna@example.org,,Ukraine;Sport,\nbob@example.org,,,\n",
        [P(2, "desk 'Sport'", "Ukraine, North America, Business, Europe, Culture"), S("bob@example.org", 3)],
    ),
    (
        "status: empty is active, any case, anything else reported",
        HEADER
        + "a@example.org,,,\nb@example.org,,,ACTIVE\nc@example.org,,,Unsubscribed\nd@example.org,,,paused\n",
        [
            S("a@example.org", 2),
            S("b@example.org", 3),
            S("c@example.org", 4, status="unsubscribed"),
            P(5, "status 'paused'", "active or unsubscribed"),
        ],
    ),
    (
        "a quoted cell over several lines: later rows keep their physical line",
        HEADER + 'anna@example.org,"Anna\nMaria\nSmith",,\nbob@example.org,Bob,,\nnot-an-address,,,\n',
        [
            S("anna@example.org", 2, name="Anna Maria Smith"),
            S("bob@example.org", 5, name="Bob"),
            P(6, "'not-an-address'"),
        ],
    ),
    (
        "a bad row that spans lines is reported where it starts",
        HEADER + 'nobody,"Anna\n\nSmith",,\nbob@example.org,,,\n',
        [P(2, "'nobody'", "runs from line 2 to line 4"), S("bob@example.org", 5)],
    ),
    (
        "a quote left open to the end of the file",
        HEADER + 'anna@example.org,"Anna,,\nbob@example.org,Bob,,\n',
        [P(2, "not valid CSV", "from line 2 to line 3", "closing quote")],
    ),
    (
        "text after a closing quote is malformed CSV; reading goes on",
        HEADER + 'anna@example.org,"Anna" Smith,,\nbob@example.org,,,\n',
        [P(2, "not valid CSV", "check its quotes"), S("bob@example.org", 3)],
    ),
    (
        "blank lines and comma-only rows are skipped but still counted",
        HEADER + "\nanna@example.org,,,\n\n,,,\n  \nbob@example.org,,,\n",
        [S("anna@example.org", 3), S("bob@example.org", 7)],
    ),
    (
        "CRLF line endings",
        "email,name\r\nanna@example.org,Anna\r\n\r\nbob@example.org,Bob\r\n",
        [S("anna@example.org", 2, name="Anna"), S("bob@example.org", 4, name="Bob")],
    ),
    (
        "too many cells (an unquoted comma) and too few are reported",
        HEADER
        + "anna@example.org,Smith, Anna,Ukraine,\nbob@example.org,Bob\ncarl@example.org,Carl,,active\n",
        [
            P(2, "5 cells", "4 columns", "quote a cell"),
            P(3, "2 cells", "4 columns"),
            S("carl@example.org", 4, name="Carl"),
        ],
    ),
    (
        "blank header cells a spreadsheet adds need not be filled, nor exceeded",
        "email,name,,\nanna@example.org,Anna,,\nbob@example.org,Bob\ncarl@example.org,Carl,,,\ndana@example.org,Dana,x,\n",
        [
            S("anna@example.org", 2, name="Anna"),
            S("bob@example.org", 3, name="Bob"),
            P(4, "5 cells", "2 columns"),
            P(5, "4 cells", "2 columns"),
        ],
    ),
    (
        "a NUL byte makes the row unusable, not the file",
        "email\nan\x00na@example.org\nbob@example.org\n",
        [P(2), S("bob@example.org", 3)],
    ),
    ("a header alone is an empty list", HEADER, []),
]


@pytest.mark.parametrize(
    ("content", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_rows(tmp_path: Path, content: str, expected: list[Subscriber | tuple[int, tuple[str, ...]]]) -> None:
    path = write(tmp_path, content)
    got = list(read_subscribers(path, DESKS))
    assert len(got) == len(expected), got
    for entry, want in zip(got, expected, strict=True):
        if isinstance(want, Subscriber):
            assert entry == want
        else:
            line, fragments = want
            assert isinstance(entry, Problem), entry
            assert (entry.path, entry.line) == (path, line), entry
            for fragment in fragments:
                assert fragment in entry.message, entry


def test_reads_the_example_list() -> None:
    entries = list(read_subscribers(REPO / "subscribers" / "daily.csv", DESKS))
    assert all(isinstance(entry, Subscriber) for entry in entries), entries
    by_email = {entry.email: entry for entry in entries if isinstance(entry, Subscriber)}
    assert len(by_email) == 12
    assert by_email["marc.dubois@example.net"].status == "unsubscribed"
    assert by_email["jurgen.hoffmann@example.net"].desks == ("Business", "Europe")
    assert by_email["lucia.ferreira@example.net"].name == "Lúcia Ferreira"
    assert by_email["newsdesk-archive@example.org"].line == 7


def test_reading_is_lazy(tmp_path: Path) -> None:
    entries = read_subscribers(write(tmp_path, "email\nanna@example.org\n"), DESKS)
    assert isinstance(entries, Iterator)
    assert next(entries) == S("anna@example.org", 2)
    assert next(entries, None) is None


def test_problem_prints_file_and_line() -> None:
    problem = Problem(Path("subscribers/daily.csv"), 7, "status 'x' is not active or unsubscribed")
    assert str(problem) == "subscribers/daily.csv:7: status 'x' is not active or unsubscribed"


def test_unknown_columns_are_one_problem_and_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "email,Nmae,notes\nanna@example.org,Anna,VIP\nbob@example.org,Bob,\n")
    first, *rest = read_subscribers(path, DESKS)
    assert isinstance(first, Problem)
    assert first.line == 1
    assert "'Nmae', 'notes'" in first.message and "email, name, desks, status" in first.message
    assert rest == [S("anna@example.org", 2), S("bob@example.org", 3)]


FILE_ERRORS = [
    # (what is wrong, file content, fragments of str(SubscriberError))
    (
        "no email column",
        "address,name\nanna@example.org,Anna\n",
        ["list.csv:1:", "no `email` column", "email,name,desks,status"],
    ),
    ("semicolon-separated", "email;name\nanna@example.org;Anna\n", ["no `email` column", "separated by ';'"]),
    ("empty file", "", ["list.csv:1:", "header row is missing"]),
    ("blank first line", "\nemail\nanna@example.org\n", ["header row is missing"]),
    ("a column twice", "email,name,Email\na@example.org,A,b@example.org\n", ["names a column twice"]),
]


@pytest.mark.parametrize(
    ("content", "fragments"), [case[1:] for case in FILE_ERRORS], ids=[case[0] for case in FILE_ERRORS]
)
def test_unusable_header_raises(tmp_path: Path, content: str, fragments: list[str]) -> None:
    path = write(tmp_path, content)
    with pytest.raises(SubscriberError) as caught:
        list(read_subscribers(path, DESKS))
    assert caught.value.path == path
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_not_utf8_raises_before_any_row(tmp_path: Path) -> None:
    path = write(
        tmp_path, "email,name\nanna@example.org,Anna\nluc@example.org,Lucie Caf\xe9\n".encode("latin-1")
    )
    entries = read_subscribers(path, DESKS)
    with pytest.raises(SubscriberError) as caught:
        next(entries)  # line 2 is fine, but nothing is yielded from a file that is not UTF-8
    assert (caught.value.path, caught.value.line) == (path, 3)
    assert str(caught.value).startswith(f"{path}:3: the file is not UTF-8 (byte 0xe9)")
    assert "CSV UTF-8" in str(caught.value)


def test_utf16_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "email\nanna@example.org\n".encode("utf-16"))
    with pytest.raises(SubscriberError, match="it is UTF-16"):
        list(read_subscribers(path, DESKS))


@pytest.mark.parametrize("name", ["missing.csv", "folder"])
def test_unopenable_file_raises(tmp_path: Path, name: str) -> None:
    (tmp_path / "folder").mkdir()
    path = tmp_path / name
    with pytest.raises(SubscriberError) as caught:
        list(read_subscribers(path, DESKS))
    assert caught.value.path == path
    assert "cannot open the file" in str(caught.value) and "config.toml" in str(caught.value)


def test_check_counts_rows_and_folds_duplicates(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "email,name,desks,status,notes\n"
        "Anna@Example.org,Anna,,,\n"
        "bob@example.org,Bob,,unsubscribed,\n"
        "anna@example.org,Anna again,,,\n"
        "not-an-address,,,,\n"
        "ANNA@EXAMPLE.ORG,,,unsubscribed,\n"
        "carl@example.org,,,,\n",
    )
    report = check_subscribers(path, DESKS)
    counts = (report.rows, report.active, report.unsubscribed, report.invalid, report.duplicates)
    assert counts == (6, 2, 1, 1, 2)
    assert [(p.line, p.message) for p in report.problems if "duplicate" in p.message] == [
        (4, "duplicate of line 2; delete one of them"),
        (6, "duplicate of line 2; delete one of them"),
    ]
    assert [p.line for p in report.problems] == [1, 4, 5, 6]  # the header's unknown column is not a row
    assert report.problems_omitted == 0


def test_check_finds_duplicates_across_commit_chunks(tmp_path: Path) -> None:
    rows = "".join(f"person{n}@example.org\n" for n in range(10_050))
    report = check_subscribers(write(tmp_path, "email\n" + rows + "PERSON7@example.org\n"), DESKS)
    assert (report.rows, report.active, report.duplicates) == (10_051, 10_050, 1)
    assert (
        str(report.problems[0]) == f"{tmp_path / 'list.csv'}:10052: duplicate of line 9; delete one of them"
    )


@pytest.mark.parametrize("batch", [1, 2, 3, 5000])
def test_duplicates_are_the_same_whichever_rows_are_looked_up_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    monkeypatch.setattr("digest.subscribers.UNIQUE_BATCH", batch)
    rows = ["a", "b", "A", "c", "x y", "B", "a", "c", "d"]
    path = write(tmp_path, "email\n" + "".join(f"{row}@example.org\n" for row in rows))
    got = [(p.line, p.duplicate_of) for p in unique_subscribers(path, DESKS) if isinstance(p, Problem)]
    assert got == [(4, 2), (6, None), (7, 3), (8, 2), (9, 5)]


def test_duplicates_are_found_a_batch_at_a_time_not_after_reading_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What keeps memory flat for any list: the first row comes out once its batch is read."""
    monkeypatch.setattr("digest.subscribers.UNIQUE_BATCH", 3)
    read: list[int] = []

    def counted(path: Path, desks: tuple[str, ...]) -> Iterator[Subscriber | Problem]:
        for entry in read_subscribers(path, desks):
            read.append(entry.line)
            yield entry

    monkeypatch.setattr("digest.subscribers.read_subscribers", counted)
    path = write(tmp_path, "email\n" + "".join(f"r{n}@example.org\n" for n in range(20)))
    rows = unique_subscribers(path, DESKS)
    assert next(rows).line == 2 and read == [2, 3, 4]
    assert len(list(rows)) == 19 and len(read) == 20


def test_a_files_desks_cells_are_remembered_up_to_a_bound(tmp_path: Path) -> None:
    """Desks cells are read once each, but a file of endless distinct cells cannot grow the cache."""
    path = write(tmp_path, HEADER + "a@example.org,A,Ukraine;Business,\n")
    layout = _header(iter([["email", "name", "desks", "status"]]), path, DESKS)
    assert layout.choose("Ukraine") == ("Ukraine",) and layout.choose("ukraine") == ("Ukraine",)
    info = layout.choose.cache_info()  # type: ignore[attr-defined]
    assert (info.maxsize, info.hits, info.misses) == (KNOWN_DESK_CELLS, 0, 2)
    layout.choose("Ukraine")
    assert layout.choose.cache_info().hits == 1  # type: ignore[attr-defined]


def test_check_keeps_only_the_first_problems(tmp_path: Path) -> None:
    extra = 7
    path = write(
        tmp_path,
        "email\n" + "".join(f"broken{n}\n" for n in range(MAX_PROBLEMS + extra)) + "ok@example.org\n",
    )
    report = check_subscribers(path, DESKS)
    assert (report.rows, report.invalid, report.active) == (MAX_PROBLEMS + extra + 1, MAX_PROBLEMS + extra, 1)
    assert len(report.problems) == MAX_PROBLEMS
    assert report.problems_omitted == extra
    assert [p.line for p in report.problems[:2]] == [2, 3] and report.problems[-1].line == MAX_PROBLEMS + 1
    assert format_check(report, "daily").splitlines()[-1] == f"… and {extra} more problems not shown"


def test_check_raises_like_read(tmp_path: Path) -> None:
    with pytest.raises(SubscriberError, match="no `email` column"):
        check_subscribers(write(tmp_path, "name\nAnna\n"), DESKS)


def test_format_check_of_the_example_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    report = check_subscribers(Path("subscribers/daily.csv"), DESKS)
    assert (
        format_check(report, "daily")
        == "daily (subscribers/daily.csv): 12 rows, 11 active, 1 unsubscribed, 0 invalid, 0 duplicates"
    )


def test_format_check_lists_each_problem() -> None:
    report = CheckReport(Path("x.csv"), rows=3, active=1, invalid=1, duplicates=1)
    report.problems += [Problem(Path("x.csv"), 2, "bad"), Problem(Path("x.csv"), 4, "duplicate of line 3")]
    assert format_check(report, "weekly").splitlines() == [
        "weekly (x.csv): 3 rows, 1 active, 0 unsubscribed, 1 invalid, 1 duplicates",
        "x.csv:2: bad",
        "x.csv:4: duplicate of line 3",
    ]


# Addresses on a few domains, valid and not, in the shapes a list holds. Each is checked after
# a plain address on its domain has warmed the cache, so the fast path gets its chance.
TRICKY_ADDRESSES = [
    "plain@example.org",
    "Mixed.Case@Example.ORG",
    "o'brien+news@example.org",
    "a.b.c@example.org",
    ".leading@example.org",
    "trailing.@example.org",
    "two..dots@example.org",
    "Postmaster@example.org",
    "INFO@example.org",
    '"quoted"@example.org',
    '"has space"@example.org',
    '"at@sign"@example.org',
    "a@b@example.org",
    "@example.org",
    "spaced name@example.org",
    "Name <name@example.org>",
    "jörg@example.org",
    "Ωmega@example.org",
    "x" * 64 + "@example.org",
    "x" * 65 + "@example.org",
    "y" * 241 + "@example.org",
    "y" * 242 + "@example.org",
    "user@bücher.example",
    "user@xn--bcher-kva.example",
    "z" * 230 + "@xn--bcher-kva.example",
    "user@localhost",
    "user@example.invalid",
    "user@-bad-.example.org",
    "user@example..org",
    "user@[192.0.2.1]",
    "tab\tin@example.org",
    "e\u0301mile@example.org",  # not NFC: the library normalizes it
    "\u0301x@example.org",  # a combining mark first
    "zero\u200dwidth@example.org",  # a format character
    "ü" * 121 + "@example.org",  # 254 bytes in UTF-8
    "ü" * 122 + "@example.org",
    "ü" * 116 + "@bücher.example",  # the IDNA ASCII form is the longest
    "ü" * 117 + "@bücher.example",
    "Ölga@Bücher.Example",
]


@pytest.mark.parametrize("address", TRICKY_ADDRESSES)
def test_the_domain_cache_gives_email_validators_own_verdict(address: str) -> None:
    def verdict(check: Callable[[str], str]) -> str:
        try:
            return "ok " + check(address)
        except EmailNotValidError as exc:
            return f"refused: {exc}"

    library = verdict(lambda a: validate_email(a, check_deliverability=False, allow_smtputf8=True).normalized)
    addresses = Addresses()
    for domain in ("example.org", "Example.ORG", "bücher.example", "xn--bcher-kva.example", "localhost"):
        with contextlib.suppress(EmailNotValidError):
            addresses.normalized(f"warm@{domain}")
    assert verdict(addresses.normalized) == library
    assert verdict(addresses.normalized) == library  # and again, now that its own domain is known


def test_a_character_accepted_inside_a_local_part_is_not_taken_as_safe_first() -> None:
    addresses = Addresses()
    addresses.normalized("warm@example.org")
    assert addresses.normalized("x\u0301y@example.org") == "x\u0301y@example.org"  # a combining mark
    with pytest.raises(EmailNotValidError, match="unsafe characters"):
        addresses.normalized("\u0301x@example.org")  # the same mark first
    with pytest.raises(EmailNotValidError, match="unsafe characters"):
        addresses.normalized("x\u200dy@example.org")  # a character never accepted


def test_unicode_local_parts_go_through_email_validator_until_their_characters_are_known(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import digest.address

    calls: list[str] = []

    def counted(local: str, **options: bool) -> object:
        calls.append(local)
        return validate_email_local_part(local, **options)

    monkeypatch.setattr(digest.address, "validate_email_local_part", counted)
    addresses = Addresses()
    addresses.normalized("warm@example.org")
    for local in ("jürgen.12", "jürgen.21", "ürgen.1", "ürgen.2", "zoë"):
        assert addresses.normalized(f"{local}@example.org") == f"{local}@example.org"
    # ü is known inside after the first, and first only after the third; ë is new.
    assert calls == ["jürgen.12", "ürgen.1", "zoë"]


def test_each_domain_goes_through_email_validator_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import digest.address

    calls: list[str] = []

    def counted(address: str, **options: bool) -> object:
        calls.append(address)
        return validate_email(address, **options)

    monkeypatch.setattr(digest.address, "validate_email", counted)
    addresses = Addresses()
    got = [
        addresses.normalized(f"reader.{n}@{domain}")
        for n in range(50)
        for domain in ("a.example", "B.example")
    ]
    assert got[:2] == ["reader.0@a.example", "reader.0@b.example"]
    assert calls == ["reader.0@a.example", "reader.0@B.example"]
