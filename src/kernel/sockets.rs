//! The TCP socket census that `doctor`, `health` and `apply --watch` read: one streaming pass
//! over a network namespace's sockets into a bounded [`SocketTally`].
//!
//! Two sources feed the same tally:
//!
//! - NETLINK_SOCK_DIAG ([`diag`]): the kernel's binary socket dump, in the caller's current
//!   network namespace (so `--netns`, entered with setns before, reads that namespace). The
//!   default whenever the tables would come from the real `/proc/net`.
//! - `/proc/net/tcp` and `tcp6`, read a line at a time: the fallback when netlink is unavailable
//!   (no sock_diag in the kernel, a sandbox refusing the socket), and the only source when
//!   `--proc-net DIR` names recorded tables.
//!
//! Neither holds more than one socket at a time. This module reads and counts; what the counts
//! mean is `doctor`'s and `health`'s business.

use std::io::BufReader;
use std::path::Path;

use crate::kernel::procnet::{PROC_NET, each_socket};

pub mod diag;
mod tally;

pub use diag::DiagError;
pub use tally::SocketTally;

/// Read size for the /proc tables: fewer, larger reads of the kernel's formatted text.
const TABLE_BUF: usize = 64 * 1024;

/// Where a census came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The NETLINK_SOCK_DIAG dump.
    Netlink,
    /// The text tables `tcp` and `tcp6` under a /proc/net directory.
    ProcNet,
    /// Nothing could be read.
    #[default]
    None,
}

/// How a census was taken: its source, and what could not be read on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Origin {
    /// The source the counts come from.
    pub source: Source,
    /// Sources that failed, with why (netlink before a fallback, a missing `tcp6`).
    pub unavailable: Vec<String>,
}

/// A socket tally and its origin.
#[derive(Debug, Clone)]
pub struct Census {
    /// The counts; `None` when no source could be read at all.
    pub tally: Option<SocketTally>,
    /// Where they came from.
    pub origin: Origin,
}

/// Counts the TCP sockets behind `proc_net`: the current namespace's through netlink when
/// `proc_net` is the real `/proc/net` (falling back to its tables), otherwise the tables in that
/// directory. `ephemeral` is `ip_local_port_range` (see [`SocketTally::new`]).
pub fn census(proc_net: &Path, ephemeral: Option<(u16, u16)>) -> Census {
    if proc_net == Path::new(PROC_NET) {
        census_kernel(proc_net, ephemeral, diag::dump_tcp)
    } else {
        from_tables(proc_net, ephemeral, Vec::new())
    }
}

/// Netlink first, then the tables (a fresh tally: a dump that broke off counts nothing).
fn census_kernel(
    proc_net: &Path,
    ephemeral: Option<(u16, u16)>,
    dump: impl FnOnce(&mut SocketTally) -> Result<(), DiagError>,
) -> Census {
    let mut tally = SocketTally::new(ephemeral);
    match dump(&mut tally) {
        Ok(()) => Census {
            tally: Some(tally),
            origin: Origin {
                source: Source::Netlink,
                unavailable: Vec::new(),
            },
        },
        Err(why) => {
            let note = format!(
                "netlink sock_diag: {why} (read {}/tcp and tcp6 instead)",
                proc_net.display()
            );
            from_tables(proc_net, ephemeral, vec![note])
        }
    }
}

/// Streams `dir/tcp` and `dir/tcp6` into one tally; a table that cannot be read is noted.
pub fn from_tables(
    dir: &Path,
    ephemeral: Option<(u16, u16)>,
    mut unavailable: Vec<String>,
) -> Census {
    let mut tally = SocketTally::new(ephemeral);
    let mut any = false;
    for name in ["tcp", "tcp6"] {
        let path = dir.join(name);
        // Never a blocking open: a recorded table directory could hold a FIFO.
        let read = crate::files::open(&path, crate::files::Policy::input(u64::MAX))
            .map_err(|e| e.to_string())
            .and_then(|f| {
                each_socket(BufReader::with_capacity(TABLE_BUF, f), |s| tally.add(s))
                    .map_err(|e| e.to_string())
            });
        match read {
            Ok(()) => any = true,
            Err(e) => unavailable.push(format!("{}: {e}", path.display())),
        }
    }
    Census {
        tally: any.then_some(tally),
        origin: Origin {
            source: if any { Source::ProcNet } else { Source::None },
            unavailable,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::procnet::TcpState;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue\n\
        0: 0100007F:1F90 00000000:0000 0A 00000000:00000002\n\
        1: 0100007F:A000 0100007F:1F90 06 00000000:00000000\n";

    #[test]
    fn recorded_tables_are_read_and_a_missing_one_is_noted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tcp"), TCP).unwrap();
        let c = census(dir.path(), Some((40000, 60999)));
        assert_eq!(c.origin.source, Source::ProcNet);
        let tally = c.tally.unwrap();
        assert_eq!(tally.total(), 2);
        assert_eq!(tally.count(TcpState::Listen), 1);
        assert_eq!(tally.time_wait_by_destination().len(), 1);
        assert_eq!(c.origin.unavailable.len(), 1);
        assert!(c.origin.unavailable[0].contains("tcp6"), "{:?}", c.origin);

        let empty = tempfile::tempdir().unwrap();
        let c = census(empty.path(), None);
        assert!(c.tally.is_none());
        assert_eq!(c.origin.source, Source::None);
        assert_eq!(c.origin.unavailable.len(), 2);
    }

    #[test]
    fn a_failed_netlink_dump_falls_back_to_the_tables_from_scratch() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tcp"), TCP).unwrap();
        std::fs::write(dir.path().join("tcp6"), "header\n").unwrap();
        let c = census_kernel(dir.path(), None, |tally| {
            // Half a dump, then the failure: none of it may be counted.
            let (_, first) = TCP.split_once('\n').unwrap();
            tally.add(&crate::kernel::procnet::parse_socket(first).unwrap());
            Err(DiagError::Sys(
                "socket(AF_NETLINK, NETLINK_SOCK_DIAG)",
                nix::errno::Errno::EPERM,
            ))
        });
        assert_eq!(c.origin.source, Source::ProcNet);
        assert_eq!(c.tally.unwrap().total(), 2);
        let note = c.origin.unavailable.join("\n");
        assert!(
            note.starts_with("netlink sock_diag: socket(AF_NETLINK, NETLINK_SOCK_DIAG): Operation not permitted (read "),
            "{note}"
        );

        let c = census_kernel(dir.path(), None, |_| Ok(()));
        assert_eq!(c.origin.source, Source::Netlink);
        assert_eq!(
            c.tally.unwrap().total(),
            0,
            "netlink's answer, not the tables'"
        );
    }
}
