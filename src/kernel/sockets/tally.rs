//! The bounded aggregate of a socket table: what `doctor` and the health sample need, and no more.
//!
//! A [`SocketTally`] is fed one [`Socket`] at a time and keeps counts per TCP state, the
//! listeners with connections waiting in their accept queue, TIME_WAIT counts per destination
//! (for local ports inside the ephemeral range), CLOSE_WAIT counts per local endpoint, and the set
//! of local ports held by non-listening sockets (a 64 Ki-bit bitmap). Its memory grows with the
//! number of distinct destinations and endpoints, never with the number of sockets. It does not
//! read anything: the sources in `sockets` feed it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::RangeInclusive;

use crate::kernel::procnet::{Endpoint, Socket, TcpState};

/// Number of TCP states the tables report (`ESTABLISHED` = 1 … `NEW_SYN_RECV` = 12).
pub const STATES: usize = 12;

/// Counts and small maps over a TCP socket table; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketTally {
    ephemeral: Option<RangeInclusive<u16>>,
    states: [usize; STATES],
    backlogged: BTreeMap<Endpoint, u64>,
    time_wait: BTreeMap<(IpAddr, Endpoint), usize>,
    close_wait: BTreeMap<Endpoint, usize>,
    ports: PortSet,
}

impl Default for SocketTally {
    fn default() -> Self {
        Self::new(None)
    }
}

impl SocketTally {
    /// An empty tally. `ephemeral` is `ip_local_port_range` (low, high): only TIME_WAIT sockets
    /// whose local port lies inside it are counted per destination (`None`: none are).
    pub fn new(ephemeral: Option<(u16, u16)>) -> Self {
        Self {
            ephemeral: ephemeral.map(|(low, high)| low..=high),
            states: [0; STATES],
            backlogged: BTreeMap::new(),
            time_wait: BTreeMap::new(),
            close_wait: BTreeMap::new(),
            ports: PortSet::default(),
        }
    }

    /// Counts one socket.
    pub fn add(&mut self, s: &Socket) {
        self.states[s.state as usize] += 1;
        match s.state {
            TcpState::Listen => {
                if s.rx_queue > 0 {
                    // A listener bound twice (SO_REUSEPORT) shows up once per socket.
                    *self.backlogged.entry(s.local).or_default() += s.rx_queue;
                }
                return;
            }
            TcpState::TimeWait if self.is_ephemeral(s.local.port) => {
                *self.time_wait.entry((s.local.ip, s.remote)).or_default() += 1;
            }
            TcpState::CloseWait => *self.close_wait.entry(s.local).or_default() += 1,
            _ => {}
        }
        self.ports.insert(s.local.port);
    }

    fn is_ephemeral(&self, port: u16) -> bool {
        self.ephemeral.as_ref().is_some_and(|r| r.contains(&port))
    }

    /// Sockets in `state`.
    pub fn count(&self, state: TcpState) -> usize {
        self.states[state as usize]
    }

    /// Every socket counted.
    pub fn total(&self) -> usize {
        self.states.iter().sum()
    }

    /// Sockets per state, states with none left out.
    pub fn states(&self) -> BTreeMap<TcpState, usize> {
        TcpState::ALL
            .iter()
            .map(|&s| (s, self.count(s)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    /// Listeners with connections waiting to be accepted, and how many wait.
    pub fn backlogged_listeners(&self) -> &BTreeMap<Endpoint, u64> {
        &self.backlogged
    }

    /// TIME_WAIT sockets with an ephemeral local port, per (local address, remote endpoint).
    pub fn time_wait_by_destination(&self) -> &BTreeMap<(IpAddr, Endpoint), usize> {
        &self.time_wait
    }

    /// CLOSE_WAIT sockets per local endpoint.
    pub fn close_wait_by_local(&self) -> &BTreeMap<Endpoint, usize> {
        &self.close_wait
    }

    /// Distinct local ports in `low..=high` held by at least one non-listening socket.
    pub fn ports_in_use(&self, low: u16, high: u16) -> usize {
        self.ports.count_in(low, high)
    }
}

/// A set of port numbers: one bit per port, 8 KiB.
#[derive(Clone, PartialEq, Eq)]
struct PortSet(Box<[u64; 1024]>);

impl Default for PortSet {
    fn default() -> Self {
        Self(Box::new([0; 1024]))
    }
}

impl std::fmt::Debug for PortSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PortSet({} ports)", self.count_in(0, u16::MAX))
    }
}

impl PortSet {
    fn insert(&mut self, port: u16) {
        self.0[usize::from(port >> 6)] |= 1 << (port & 63);
    }

    /// Members in `low..=high` (none when `low > high`).
    fn count_in(&self, low: u16, high: u16) -> usize {
        if low > high {
            return 0;
        }
        let (first, last) = (usize::from(low >> 6), usize::from(high >> 6));
        let low_mask = u64::MAX << (low & 63);
        let high_mask = u64::MAX >> (63 - (high & 63));
        (first..=last)
            .map(|i| {
                let mut word = self.0[i];
                if i == first {
                    word &= low_mask;
                }
                if i == last {
                    word &= high_mask;
                }
                word.count_ones() as usize
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(local: &str, remote: &str, state: TcpState, rx_queue: u64) -> Socket {
        let ep = |s: &str| {
            let addr: std::net::SocketAddr = s.parse().unwrap();
            Endpoint {
                ip: addr.ip(),
                port: addr.port(),
            }
        };
        Socket {
            local: ep(local),
            remote: ep(remote),
            state,
            rx_queue,
        }
    }

    #[test]
    fn port_set_counts_inside_inclusive_ranges() {
        let mut set = PortSet::default();
        for port in [0, 1, 63, 64, 127, 128, 40000, 65535] {
            set.insert(port);
        }
        set.insert(64);
        let cases = [
            ((0, 65535), 8),
            ((0, 0), 1),
            ((1, 63), 2),
            ((63, 64), 2),
            ((64, 127), 2),
            ((65, 126), 0),
            ((128, 39999), 1),
            ((40000, 40000), 1),
            ((40001, 65534), 0),
            ((65535, 65535), 1),
            ((2, 1), 0),
        ];
        for ((low, high), want) in cases {
            assert_eq!(set.count_in(low, high), want, "{low}..={high}");
        }
    }

    #[test]
    fn each_state_feeds_its_own_aggregate() {
        let mut t = SocketTally::new(Some((40000, 40099)));
        let rows = [
            ("127.0.0.1:9000", "0.0.0.0:0", TcpState::Listen, 3),
            ("127.0.0.1:9001", "0.0.0.0:0", TcpState::Listen, 0),
            ("127.0.0.1:40000", "127.0.0.1:9000", TcpState::TimeWait, 0),
            ("127.0.0.1:40001", "127.0.0.1:9000", TcpState::TimeWait, 0),
            ("127.0.0.1:40001", "127.0.0.1:9001", TcpState::TimeWait, 0),
            ("127.0.0.1:50000", "127.0.0.1:9000", TcpState::TimeWait, 0),
            ("127.0.0.1:9000", "127.0.0.1:40002", TcpState::CloseWait, 0),
            ("127.0.0.1:9000", "127.0.0.1:40003", TcpState::CloseWait, 0),
            ("[::1]:8080", "[::1]:40004", TcpState::Established, 0),
            ("[::1]:40004", "[::1]:8080", TcpState::Established, 0),
        ];
        for (local, remote, state, rx) in rows {
            t.add(&socket(local, remote, state, rx));
        }
        assert_eq!(t.total(), 10);
        assert_eq!(t.count(TcpState::TimeWait), 4);
        assert_eq!(t.count(TcpState::SynSent), 0);
        assert_eq!(t.states().len(), 4, "{:?}", t.states());
        let listeners: Vec<String> = t
            .backlogged_listeners()
            .iter()
            .map(|(ep, n)| format!("{ep}={n}"))
            .collect();
        assert_eq!(listeners, ["127.0.0.1:9000=3"]);
        let tw: Vec<String> = t
            .time_wait_by_destination()
            .iter()
            .map(|((ip, dest), n)| format!("{ip}->{dest}={n}"))
            .collect();
        assert_eq!(
            tw,
            ["127.0.0.1->127.0.0.1:9000=2", "127.0.0.1->127.0.0.1:9001=1"],
            "50000 lies outside the ephemeral range"
        );
        assert_eq!(t.close_wait_by_local().len(), 1);
        assert_eq!(t.close_wait_by_local().values().sum::<usize>(), 2);
        // Non-listening local ports: 40000, 40001 (twice), 50000, 9000 (CLOSE_WAIT), 8080, 40004.
        assert_eq!(t.ports_in_use(40000, 40099), 3);
        assert_eq!(t.ports_in_use(1, 65535), 6);
    }

    #[test]
    fn without_a_range_no_time_wait_counts_per_destination() {
        let mut t = SocketTally::default();
        t.add(&socket(
            "127.0.0.1:40000",
            "127.0.0.1:9000",
            TcpState::TimeWait,
            0,
        ));
        assert!(t.time_wait_by_destination().is_empty());
        assert_eq!(t.count(TcpState::TimeWait), 1);
        assert_eq!(t.ports_in_use(40000, 40000), 1);
    }
}
