"""A deterministic writer of newc ("070701") cpio archives, the format the kernel unpacks.

Entries get sequential inode numbers and mtime 0, so the same inputs give the same bytes.
Parent directories are created on demand. The kernel accepts several archives concatenated
(each compressed or not), which is how a run's overlay is appended to the cached base image.
"""

import gzip
import stat

_MAGIC = b"070701"


class CpioWriter:
    """Collects entries and renders them as one newc archive."""

    def __init__(self):
        self._chunks = []
        self._ino = 1
        self._dirs = set()
        self.names = set()

    def _entry(self, name, mode, data=b"", nlink=1, rdev=(0, 0)):
        name = name.strip("/")
        fields = [self._ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(name) + 1, 0]
        self._ino += 1
        header = _MAGIC + b"".join(b"%08X" % f for f in fields)
        self._chunks.append(_pad(header + name.encode() + b"\0"))
        self._chunks.append(_pad(data))
        self.names.add(name)

    def dir(self, name, mode=0o755):
        """Adds a directory (and its parents)."""
        name = name.strip("/")
        if not name or name in self._dirs:
            return
        self._parents(name)
        self._dirs.add(name)
        self._entry(name, stat.S_IFDIR | mode, nlink=2)

    def _parents(self, name):
        parent = name.rpartition("/")[0]
        if parent:
            self.dir(parent)

    def file(self, name, data, mode=0o644):
        """Adds a regular file with these bytes."""
        self._parents(name.strip("/"))
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        """Adds a symbolic link."""
        self._parents(name.strip("/"))
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name, major, minor, mode=0o600):
        """Adds a character device node (the kernel opens /dev/console before init)."""
        self._parents(name.strip("/"))
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def render(self):
        """The archive's bytes, trailer included, padded to a multiple of 512."""
        trailer = CpioWriter()
        trailer._entry("TRAILER!!!", 0)
        data = b"".join(self._chunks + trailer._chunks)
        return data + b"\0" * (-len(data) % 512)

    def render_gzip(self):
        """The archive gzip-compressed (mtime 0), padded to a multiple of 4 bytes."""
        data = gzip.compress(self.render(), compresslevel=6, mtime=0)
        return data + b"\0" * (-len(data) % 4)


def _pad(data):
    return data + b"\0" * (-len(data) % 4)
