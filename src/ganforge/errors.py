"""Errors a user can fix. The command line prints them as one line and exits with code 2."""
import errno

# the errno values of a full disk and of a full quota: the user frees space and runs again
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# a path the user gave cannot be used as it is: permissions, a read-only disk, a name too long
BAD_PATH = (errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR,
            errno.ENAMETOOLONG, errno.ELOOP)


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


def no_space(e: OSError) -> str:
    """The start of the one line for a full disk, naming the file where the error says."""
    return "no space left on device" + (f" (writing {e.filename})" if e.filename else "")
