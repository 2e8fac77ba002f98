"""config.toml mistakes: every problem is reported at once, in plain words, each with its line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from digest.config import load_config
from digest.errors import ConfigError
from tests.conftest import MakeProject

SMTP = '[transports.mail]\nbackend = "smtp"\n'
SENDGRID = '[transports.sg]\nbackend = "sendgrid"\n'

# (what is wrong, replacements in the base config, text appended to it, the problems expected
# in the file's order: the text on the line each must name (None: no line), and how its
# message after "config.toml:<line>: " begins). No other problem may be reported.
CASES: list[tuple[str, dict[str, str], str, list[tuple[str | None, str]]]] = [
    # Unknown keys and sections, with the closest known one.
    (
        "unknown key",
        {"max_items = 8": "max_items = 8\nmax_itemz = 3"},
        "",
        [("max_itemz", "desks: unknown key 'max_itemz': did you mean 'max_items'?")],
    ),
    (
        "misspelled required key hides no misspelling",
        {'source = "feeds/world.xml"': 'sorce = "feeds/world.xml"'},
        "",
        [("sorce", "feeds[0]: unknown key 'sorce': did you mean 'source'?")],
    ),
    (
        "misspelled section",
        {"[newsroom]": "[newsrom]"},
        "",
        [("[newsrom]", "unknown section [newsrom]: did you mean [newsroom]?")],
    ),
    (
        "unknown section like no other",
        {"[newsroom]": "[masthead]"},
        "",
        [
            ("[masthead]", "unknown section [masthead] (known here: newsroom, desks, feeds, fetch,"),
            (None, "required section [newsroom] is missing"),
        ],
    ),
    (
        "unknown key like no other",
        {},
        "[fetch]\nverbose = true\n",
        [("verbose", "fetch: unknown key 'verbose' (known here: timeout, max_bytes, user_agent,")],
    ),
    (
        "misspelled transport option",
        {},
        SMTP + "prot = 2525\n",
        [("prot", "transports.mail: unknown key 'prot': did you mean 'port'?")],
    ),
    (
        "unknown section in a transport",
        {},
        SMTP + "[transports.mail.tls]\nverify = true\n",
        [("[transports.mail.tls]", "unknown section [transports.mail.tls] (known here: host, port,")],
    ),
    # Wrong types, in plain words.
    (
        "text for a whole number",
        {"max_items = 8": 'max_items = "8"'},
        "",
        [("max_items", 'desks.max_items: must be a whole number, not "8"')],
    ),
    (
        "true for seconds",
        {},
        "[fetch]\ntimeout = true\n",
        [("timeout", "fetch.timeout: must be a number of seconds, not true")],
    ),
    (
        "a number for text",
        {'name = "The Morning Ledger"': "name = 5"},
        "",
        [("name = 5", "newsroom.name: must be text, not 5")],
    ),
    (
        "a date for text",
        {'name = "The Morning Ledger"': "name = 2026-11-25"},
        "",
        [("name = 2026", "newsroom.name: must be text, not a date")],
    ),
    (
        "text for a list of desks",
        {'order = ["Ukraine", "North America", "Business", "Europe", "Culture"]': 'order = "Ukraine"'},
        "",
        [("order", 'desks.order: must be a list of desk names, not "Ukraine"')],
    ),
    (
        "a number in a list of desks",
        {'order = ["Ukraine", "North America"': 'order = ["Ukraine", 5'},
        "",
        [("order", "desks.order[1]: must be text, not 5")],
    ),
    (
        "text for a list of feeds",
        {'transport = "outbox"': 'transport = "outbox"\nrequired_feeds = "world"'},
        "",
        [("required_feeds", 'lists[0].required_feeds: must be a list of feed names, not "world"')],
    ),
    (
        "text for a table",
        {
            '[desks.categories]\n"War" = "Ukraine"\n"Film" = "Culture"\n': "",
            "max_items = 8": 'categories = "War"',
        },
        "",
        [
            (
                "categories",
                'desks.categories: must be a table of category = desk, like "War" = "Ukraine", not "War"',
            )
        ],
    ),
    (
        "true or false",
        {},
        SENDGRID + 'sandbox_mode = "yes"\n',
        [("sandbox_mode", 'transports.sg.sandbox_mode: must be true or false, not "yes"')],
    ),
    (
        "a whole number option",
        {},
        SMTP + "port = 25.0\n",
        [("port = 25.0", "transports.mail.port: must be a whole number, not 25.0")],
    ),
    (
        "a duration, not true",
        {},
        "[fetch]\nretry_for = true\n",
        [("retry_for", 'fetch.retry_for: true is not a duration; write seconds, or like "45m"')],
    ),
    (
        "a duration, not a fraction",
        {},
        "[schedule]\nmisfire_grace = 1.5\n",
        [("misfire_grace", "schedule.misfire_grace: 1.5 is not a duration")],
    ),
    (
        "a number for a timezone",
        {'timezone = "Europe/Kyiv"\nsender': "timezone = 3\nsender"},
        "",
        [("timezone = 3", 'newsroom.timezone: must be a timezone name like "Europe/Kyiv", not 3')],
    ),
    (
        "a number for a schedule",
        {'schedule = "0 7 * * *"': "schedule = 7"},
        "",
        [("schedule", 'lists[0].schedule: must be a crontab expression like "0 7 * * *", not 7')],
    ),
    (
        "a number for a desk's link",
        {'"Film" = "Culture"\n': '"Film" = "Culture"\n\n[desks.links]\n"Culture" = 5\n'},
        "",
        [
            (
                '"Culture" = 5',
                'desks.links.Culture: must be an http(s) URL like "https://news.example.org", not 5',
            )
        ],
    ),
    (
        "an optional timezone",
        {'timezone = "Europe/Kyiv"\ntransport': "timezone = true\ntransport"},
        "",
        [("timezone = true", 'lists[0].timezone: must be a timezone name like "Europe/Kyiv", not true')],
    ),
    # Patterns, bounds and choices.
    (
        "a list name with a space",
        {'name = "daily"': 'name = "daily news"'},
        "",
        [("daily news", 'lists[0].name: must be a name of letters, digits, ".", "_" and "-"')],
    ),
    (
        "a language tag",
        {"[desks]": 'lang = "english"\n\n[desks]'},
        "",
        [("english", 'newsroom.lang: must be a language tag like "en" or "pt-BR", not "english"')],
    ),
    (
        "a bound",
        {"max_items = 8": "max_items = 0"},
        "",
        [("max_items", "desks.max_items: must be at least 1")],
    ),
    (
        "a length",
        {},
        SENDGRID + 'ip_pool = "x"\n',
        [("ip_pool", "transports.sg.ip_pool: must be at least 2 characters long")],
    ),
    (
        "an empty name",
        {'name = "The Morning Ledger"': 'name = " "'},
        "",
        [('name = " "', "newsroom.name: must not be empty")],
    ),
    (
        "a backend",
        {'backend = "outbox"': 'backend = "mail"'},
        "",
        [("mail", 'transports.outbox.backend: must be "outbox", "smtp" or "sendgrid", not "mail"')],
    ),
    (
        "no backend",
        {'backend = "outbox"\n': ""},
        "",
        [("[transports.outbox]", "transports.outbox.backend: required key is missing")],
    ),
    (
        "a transport that is not a table",
        {},
        "[transports]\nmail = 3\n",
        [("mail = 3", "transports.mail: must be a table, not 3")],
    ),
    (
        "an option of another backend",
        {},
        SENDGRID + 'host = "smtp.example.org"\n',
        [("host", "transports.sg: unknown key 'host' (known here: api_url, batch_size,")],
    ),
    (
        "options that go together",
        {},
        SMTP + 'username_env = "SMTP_USER"\n',
        [("[transports.mail]", "transports.mail: set both username_env and password_env")],
    ),
    (
        "every problem of a transport's options",
        {},
        SMTP + 'security = "tls"\nport = "25"\nconnections = 0\n',
        [
            ("security", 'transports.mail.security: must be "none", "starttls" or "ssl", not "tls"'),
            ('port = "25"', 'transports.mail.port: must be a whole number, not "25"'),
            ("connections", "transports.mail.connections: must be at least 1"),
        ],
    ),
    # Hand-written messages and cross-references.
    (
        "feed desk not in order",
        {'desk = "Business"': 'desk = "Sport"'},
        "",
        [
            (
                '"Sport"',
                "feeds[1].desk: desk 'Sport' is not in [desks] order (Ukraine, North America, Business, Europe, Culture); add it there or fix the name",
            )
        ],
    ),
    (
        "category mapped to an unknown desk",
        {'"Film" = "Culture"': '"Film" = "Cinema"'},
        "",
        [('"Cinema"', "desks.categories.Film: desk 'Cinema' is not in [desks] order")],
    ),
    (
        "missing feed file",
        {"feeds/culture.json": "feeds/nope.json"},
        "",
        [("nope.json", "feeds[2].source: feed file 'feeds/nope.json' not found")],
    ),
    (
        "missing subscriber file",
        {"subscribers/daily.csv": "subscribers/none.csv"},
        "",
        [("none.csv", "lists[0].subscribers: subscriber file 'subscribers/none.csv' not found")],
    ),
    (
        "bad cron",
        {'schedule = "0 7 * * *"': 'schedule = "0 7 * *"'},
        "",
        [("schedule", "lists[0].schedule: '0 7 * *' has 4 fields; a cron expression has five")],
    ),
    (
        "bad timezone",
        {'timezone = "Europe/Kyiv"\nsender': 'timezone = "Europe/Kiev2"\nsender'},
        "",
        [("Kiev2", "newsroom.timezone: unknown timezone 'Europe/Kiev2'; use an IANA name")],
    ),
    (
        "an accent that is no hex colour",
        {"[desks]": 'accent_color = "blue"\n\n[desks]'},
        "",
        [("accent_color", "newsroom.accent_color: 'blue' is not a hex colour like \"#0b57a4\"")],
    ),
    (
        "a font name CSS cannot take unquoted",
        {"[desks]": 'font_stack = "Georgia; color: red"\n\n[desks]'},
        "",
        [
            (
                "font_stack",
                "newsroom.font_stack: font 'Georgia; color: red' cannot stand unquoted in a CSS font list; use "
                "names whose words are letters, digits and hyphens, each word starting with a letter",
            )
        ],
    ),
    (
        "a generic family before the fonts",
        {"[desks]": 'font_stack = "serif, Georgia"\n\n[desks]'},
        "",
        [
            (
                "font_stack",
                "newsroom.font_stack: the generic family in 'serif, Georgia' must come last, where a browser "
                "falls back to it",
            )
        ],
    ),
    (
        "missing key",
        {'site_url = "https://news.example.org"\n': ""},
        "",
        [("[newsroom]", "newsroom.site_url: required key is missing")],
    ),
    (
        "undefined transport",
        {'transport = "outbox"': 'transport = "smtp"'},
        "",
        [('"smtp"', "lists[0].transport: transport 'smtp' is not defined; add a [transports.smtp] table")],
    ),
    (
        "list desk not in order",
        {'transport = "outbox"': 'transport = "outbox"\ndesks = ["Ukraine", "Weather"]'},
        "",
        [("Weather", "lists[0].desks: desk 'Weather' is not in [desks] order")],
    ),
    (
        "bad sender",
        {"<digest@news.example.org>": "digest-at-news"},
        "",
        [("digest-at-news", "newsroom.sender: 'The Morning Ledger digest-at-news' is not an address")],
    ),
    ("not TOML", {"[desks]\n": "[desks\n"}, "", [("[desks", "not valid TOML: ")]),
    # Every problem at once, in the file's order, the cross-references among them.
    (
        "several problems",
        {
            "[newsroom]": "[newsrom]",
            "max_items = 8": 'max_items = "8"',
            'source = "feeds/world.xml"': 'sorce = "feeds/world.xml"',
            'desk = "Business"': 'desk = "Sport"',
            'transport = "outbox"': 'transport = "smtp"',
        },
        "[fetch]\ntimeout = true\n",
        [
            ("[newsrom]", "unknown section [newsrom]: did you mean [newsroom]?"),
            ("max_items", 'desks.max_items: must be a whole number, not "8"'),
            ("sorce", "feeds[0]: unknown key 'sorce': did you mean 'source'?"),
            ('"Sport"', "feeds[1].desk: desk 'Sport' is not in [desks] order"),
            ('"smtp"', "lists[0].transport: transport 'smtp' is not defined"),
            ("timeout", "fetch.timeout: must be a number of seconds, not true"),
        ],
    ),
    (
        "a list's desks empty",
        {'transport = "outbox"\n': 'transport = "outbox"\ndesks = []\n'},
        "",
        [("desks = []", "lists[0].desks: must name at least one desk; leave `desks` out for all desks")],
    ),
    (
        "desk names a subscriber file could not name",
        {'"Europe", "Culture"]': '"Europe", "Culture", "Arts;Books", " ", "Tab\\there", "Line\\u2028break"]'},
        "",
        [
            (
                "Arts;Books",
                "desks.order[5]: desk 'Arts;Books' contains ';', which separates desks in a subscriber "
                "file's desks column; use another character",
            ),
            ("Arts;Books", "desks.order[6]: a desk name cannot be empty"),
            (
                "Arts;Books",
                "desks.order[7]: desk 'Tab\\there' contains the control character U+0009; remove it",
            ),
            (
                "Arts;Books",
                "desks.order[8]: desk 'Line\\u2028break' contains the control character U+2028; remove it",
            ),
        ],
    ),
]


def line_of(path: Path, marker: str) -> int:
    """The number of the first line of ``path`` holding ``marker``."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if marker in line)


@pytest.mark.parametrize(("replace", "extra", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_problem_is_reported_with_its_line(
    make_project: MakeProject, replace: dict[str, str], extra: str, expected: list[tuple[str | None, str]]
) -> None:
    path = make_project(replace=replace, extra=extra)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    reported = [str(problem) for problem in caught.value.problems]
    assert len(reported) == len(expected), "\n".join(reported)
    for text, (marker, message) in zip(reported, expected, strict=True):
        line = None if marker is None else line_of(path, marker)
        assert text.startswith(f"{path}:{line}: {message}" if line else f"{path}: {message}"), text
    first = caught.value.problems[0]
    assert (caught.value.path, caught.value.line, caught.value.message) == (
        first.path,
        first.line,
        first.message,
    )
    assert str(caught.value) == "\n".join(reported)


def test_one_problem_reads_as_before(make_project: MakeProject) -> None:
    path = make_project(replace={'desk = "Business"': 'desk = "Sport"'})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == (caught.value,)
    assert str(caught.value) == (
        f"{path}:{line_of(path, 'Sport')}: feeds[1].desk: desk 'Sport' is not in [desks] order "
        "(Ukraine, North America, Business, Europe, Culture); add it there or fix the name"
    )


def test_the_cli_prints_every_problem_on_its_own_line(make_project: MakeProject) -> None:
    path = make_project(
        replace={
            "[newsroom]": "[newsrom]",
            "max_items = 8": 'max_items = "8"',
            'desk = "Business"': 'desk = "Sport"',
        },
        extra="[fetch]\ntimeout = true\n",
    )
    completed = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(path), "feeds", "check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert completed.stderr.splitlines() == [
        f"error: {path}:{line_of(path, '[newsrom]')}: unknown section [newsrom]: did you mean [newsroom]?",
        f'error: {path}:{line_of(path, "max_items")}: desks.max_items: must be a whole number, not "8"',
        f"error: {path}:{line_of(path, 'Sport')}: feeds[1].desk: desk 'Sport' is not in [desks] order "
        "(Ukraine, North America, Business, Europe, Culture); add it there or fix the name",
        f"error: {path}:{line_of(path, 'timeout')}: fetch.timeout: must be a number of seconds, not true",
    ]
