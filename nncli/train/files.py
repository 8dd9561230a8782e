"""Writing files so that a crash never leaves half of one, and never through a symbolic link.

    atomic_write(path, data)                        # a temporary file, fsync, rename, fsync the folder
    atomic_write(run / "run.json", data, follow_links=False)   # inside a run folder
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from nncli.errors import RunError
from nncli.train import faults


def open_folder(folder: Path, follow: bool) -> int:
    flags = os.O_RDONLY | os.O_DIRECTORY | (0 if follow else os.O_NOFOLLOW)
    try:
        return os.open(folder, flags)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR) and folder.is_symlink():
            raise RunError(f"{folder} is a symbolic link: nncli never writes through links in a run folder "
                           "(replace it with the folder itself)") from None
        raise


def atomic_write(path: Path, data: bytes, follow_links: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (then sync the folder).

    With ``follow_links=False`` (every write into a run folder) the folder itself must not be a
    symbolic link; the temporary file is made exclusively, and a link at ``path`` is replaced, never
    written through. Raises OSError (the temporary file removed) when the write fails.
    """
    path = Path(path)
    dir_fd = open_folder(path.parent, follow_links)
    tmp = f".{path.name}.nncli-{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as f:
                faults.write_stage(path.name, "open")
                f.write(data[: len(data) // 2])
                f.flush()
                faults.write_stage(path.name, "half")
                f.write(data[len(data) // 2:])
                f.flush()
                os.fsync(f.fileno())
                faults.write_stage(path.name, "synced")
            os.replace(tmp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass
            raise
        faults.write_stage(path.name, "renamed")
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
    finally:
        os.close(dir_fd)


