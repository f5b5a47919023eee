"""Atomic output files: a failed or interrupted writer never leaves a half-written file behind.

Every snnc writer (NIR files, .npz outputs, report.json/.html) writes into a temporary file in the
target's own directory (so the final rename stays on one file system), fsyncs it, and only then
`os.replace`s it over the target, which POSIX makes atomic: a reader sees the old file or the new
one, never a mix. If the writer raises (or the process is killed) the old file is untouched and
the temporary is removed (or, after SIGKILL, left as a hidden `.NAME.*.tmp` next to it).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success move it over `path`, on error delete it.

    For writers that want a file name (h5py, nir.write); see `atomic_open` for file objects. The
    directory must exist (an OSError otherwise, as from open())."""
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # flush the writer's data to disk before the rename makes it visible
            os.fsync(f.fileno())
        if target.exists():
            with contextlib.suppress(OSError):
                os.chmod(tmp, target.stat().st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a normal open() gives 0666 & ~umask
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = None) -> Iterator[IO]:
    """`open(path, mode)` whose content appears at `path` only when the block ends without error."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding if mode == "w" else None) as f:
            yield f
            f.flush()


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """`Path.write_text`, atomically."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
