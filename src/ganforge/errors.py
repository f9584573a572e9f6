"""Errors a user can fix. The command line prints them as one line and exits with code 2."""
import errno
import os
from pathlib import Path

# the errno values of a full disk and of a full quota: the user frees space and runs again
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# a path the user gave cannot be used as it is: permissions, a read-only disk, a name too long,
# a folder that cannot be made there (/proc/x) or a symbolic link to nothing in the way
BAD_PATH = (errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR,
            errno.ENAMETOOLONG, errno.ELOOP, errno.ENOENT, errno.EEXIST)


class GanforgeError(Exception):
    """Base class: the message is one line naming what was wrong and what is accepted."""


class ConfigError(GanforgeError):
    pass


class DataError(GanforgeError):
    pass


class CheckpointError(GanforgeError):
    pass


class TrainingDiverged(GanforgeError):
    """The losses or weights of a run stopped being finite numbers."""


def out_of_memory(e: BaseException) -> bool:
    """A MemoryError, or torch's out-of-memory error (a RuntimeError) on any device."""
    first = (str(e).splitlines() or [""])[0]
    return isinstance(e, MemoryError) or isinstance(e, RuntimeError) and any(
        w in first for w in ("can't allocate memory", "out of memory"))


def bad_path(e: OSError) -> str:
    """The one line for an OSError in BAD_PATH, naming its file; a symbolic link on the way that
    points nowhere (mkdir says "file exists", open "no such file") is named as what it is."""
    path = Path(e.filename)
    link = next((p for p in (path, *path.parents) if p.is_symlink() and not p.exists()), None)
    if link is not None:
        return (f"'{link}' is a symbolic link to '{os.readlink(link)}', which does not exist; "
                "make that folder or choose another path")
    return f"{e.strerror.lower()}: '{e.filename}'"


def no_space(e: OSError) -> str:
    """The start of the one line for a full disk, naming the file where the error says."""
    return "no space left on device" + (f" (writing {e.filename})" if e.filename else "")


def whole(name: str, value, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` as an int when it is a whole number in [minimum, maximum] (numpy integers and
    one-element integer tensors count, bool does not); otherwise a one-line ValueError."""
    import operator

    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < minimum or (maximum is not None and number > maximum):
        span = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{name}={value!r}: it must be a whole number {span}")
    return number
