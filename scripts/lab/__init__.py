"""The kernel lab: boots Debian's cloud kernels under qemu to test sysprof on real kernels.

Modules, in pipeline order:

- ``kernels``   the kernel table, the host's Debian mirror, private apt fetches and the cache;
- ``cpio``      a deterministic newc cpio writer;
- ``initramfs`` the guest's root file system (busybox, procps' sysctl, sysprof, modules, init);
- ``vm``        one boot: qemu, the serial console, disks, the exit marker and the hard timeout;
- ``introspect`` dumps of /proc/sys (init and child network namespace) as JSON;
- ``suite``     the lab's checks, one guest boot per step, tallied per kernel;
- ``cli``       the ``scripts/kernel-lab`` command line.

Nothing here writes a sysctl of the host: every write happens inside a throwaway guest.
"""
