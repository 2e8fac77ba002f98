"""Polls the files a preview depends on and counts changes, so the page can reload itself.

Watched: every file in the templates folders (the config's ``[render] templates`` and the
packaged defaults), the config file, the local feed files and the subscriber files. Editor
droppings (dotfiles such as vim's ``.name.swp``, ``#name#``, ``name~``) are ignored. Any change
bumps ``version`` and wakes everyone waiting in ``wait``. A changed config is loaded again;
when it is invalid the previous one stays in use and ``error`` says what is wrong.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from digest.config import Config, load_config
from digest.errors import DigestError
from digest.render.templates import default_template_dir

log = logging.getLogger(__name__)

INTERVAL = 0.25
RETRY_EVERY = 4  # polls between attempts to load a config that failed (a missing file may appear)

Signature = dict[str, tuple[int, int]]


def _ignored(name: str) -> bool:
    return name.startswith((".", "#")) or name.endswith("~")


def _stat(path: Path, into: Signature) -> None:
    try:
        stat = path.stat()
    except OSError:
        into[str(path)] = (-1, -1)
    else:
        into[str(path)] = (stat.st_mtime_ns, stat.st_size)


def _folder(folder: Path, into: Signature) -> None:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not _ignored(d))
        for name in sorted(files):
            if not _ignored(name):
                _stat(Path(root) / name, into)


def watched_files(config_path: Path, config: Config | None) -> Signature:
    """Each watched file → (mtime in ns, size); (-1, -1) for one that is missing."""
    found: Signature = {}
    _stat(config_path, found)
    folders = [default_template_dir()]
    if config is not None:
        if config.templates is not None:
            folders.insert(0, config.templates)
        for feed in config.settings.feeds:
            if not feed.is_remote:
                _stat(config.resolve(feed.source), found)
        for mailing_list in config.settings.lists:
            if mailing_list.subscribers:
                _stat(config.resolve(mailing_list.subscribers), found)
    for folder in dict.fromkeys(folder.resolve() for folder in folders):
        _folder(folder, found)
    return found


class Watcher(threading.Thread):
    """A daemon thread polling every ``interval`` seconds; ``start()`` it, ``stop()`` it."""

    def __init__(self, config_path: Path | str, *, interval: float = INTERVAL) -> None:
        super().__init__(name="digest-preview-watch", daemon=True)
        self.config_path = Path(config_path).expanduser().absolute()
        self.interval = interval
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._version = 1
        self._config: Config | None = None
        self._error: DigestError | None = None
        self._polls = 0
        self._load()
        self._files = watched_files(self.config_path, self._config)

    # -- what the app reads ----------------------------------------------------------------

    @property
    def version(self) -> int:
        with self._changed:
            return self._version

    @property
    def config(self) -> Config | None:
        """The last valid config (None when none was ever valid)."""
        with self._changed:
            return self._config

    @property
    def error(self) -> DigestError | None:
        """Why the config file as it is now cannot be used (None when it can)."""
        with self._changed:
            return self._error

    def snapshot(self) -> tuple[int, Config | None, DigestError | None]:
        """Version, config and config error, consistent with each other."""
        with self._changed:
            return self._version, self._config, self._error

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def wait(self, version: int, timeout: float) -> int:
        """Block until the version is not ``version``, ``wake`` or ``stop`` is called, or timeout."""
        with self._changed:
            if self._version == version and not self._stopping.is_set():
                self._changed.wait(timeout)
            return self._version

    def wake(self) -> None:
        """Wake every waiter without a change (they look at ``stopped`` or their own flags)."""
        with self._changed:
            self._changed.notify_all()

    # -- the thread ------------------------------------------------------------------------

    def run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.poll()
            except Exception:  # a surprise must not end the watching
                log.exception("preview: could not check the watched files")

    def stop(self) -> None:
        self._stopping.set()
        self.wake()

    def poll(self) -> bool:
        """Look once; True (and the version bumped) when something changed."""
        self._polls += 1
        files = watched_files(self.config_path, self.config)
        config_key = str(self.config_path)
        retry = self.error is not None and self._polls % RETRY_EVERY == 0
        if files == self._files and not retry:
            return False
        if files.get(config_key) != self._files.get(config_key) or self.error is not None:
            before = self.error
            self._load()
            files = watched_files(self.config_path, self.config)
            if files == self._files and before is not None and self.error is not None:
                return False  # still the same broken config
        self._files = files
        self._bump()
        return True

    def _bump(self) -> None:
        with self._changed:
            self._version += 1
            self._changed.notify_all()

    def _load(self) -> None:
        try:
            config = load_config(self.config_path)
        except DigestError as exc:
            with self._changed:
                before, self._error = self._error, exc
            if str(before) != str(exc):
                log.warning("preview: %s", exc)
            return
        with self._changed:
            self._config = config
            self._error = None
