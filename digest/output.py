"""Write files so that a reader sees the old version or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from digest.errors import OutputError


def write_atomically(files: Mapping[Path, bytes]) -> None:
    """Write every file to a temporary sibling first, then move them all into place.

    A failure while writing leaves the previous outputs untouched and no temporary files.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for target, data in files.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            staged.append((Path(name), target))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(name, 0o644)
        for temp, target in staged:
            os.replace(temp, target)
    except OSError as exc:
        for temp, _target in staged:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        where = exc.filename or (staged[-1][1] if staged else next(iter(files), None))
        raise OutputError(f"cannot write output: {exc.strerror or exc}", path=where) from None
