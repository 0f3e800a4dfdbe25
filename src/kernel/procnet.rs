//! Parsers for the kernel's per-network-namespace tables under /proc/net.
//!
//! Pure functions of the text, so `doctor` can be tested on recorded files: the counter files
//! (`netstat`, `snmp`: a header line of names and a line of values per group), conntrack's
//! per-CPU statistics (`stat/nf_conntrack`: hex columns, one row per CPU) and the TCP socket
//! tables (`tcp`, `tcp6`, also read a line at a time by [`each_socket`]). Opening the files
//! is the caller's job.

/// The default `/proc/net`: it shows the network namespace of the process reading it, so after
/// `--netns` it is that namespace's.
pub const PROC_NET: &str = "/proc/net";

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Counters by `Group.Name` (`TcpExt.ListenOverflows`, `Tcp.RetransSegs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters(pub BTreeMap<String, u64>);

impl Counters {
    /// Parses and adds the groups of a netstat/snmp-style file.
    pub fn add_text(&mut self, text: &str) {
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks(2) {
            let [names, values] = pair else { continue };
            let (Some((group, names)), Some((group2, values))) =
                (names.split_once(':'), values.split_once(':'))
            else {
                continue;
            };
            if group != group2 {
                continue;
            }
            for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
                if let Ok(v) = value.parse::<i64>() {
                    self.0.insert(format!("{group}.{name}"), v.max(0) as u64);
                }
            }
        }
    }

    /// A counter, if the kernel has it.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.get(name).copied()
    }

    /// A counter, 0 when absent.
    pub fn value(&self, name: &str) -> u64 {
        self.get(name).unwrap_or(0)
    }
}

/// Conntrack statistics summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConntrackStats {
    /// Column name → sum over CPUs (`entries` is global: the first row's value).
    pub totals: BTreeMap<String, u64>,
}

impl ConntrackStats {
    /// Parses `/proc/net/stat/nf_conntrack`; `None` if it has no header.
    pub fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next()?.split_whitespace().collect();
        let mut totals: BTreeMap<String, u64> = BTreeMap::new();
        for (row, line) in lines.enumerate() {
            for (name, field) in header.iter().zip(line.split_whitespace()) {
                let Ok(v) = u64::from_str_radix(field, 16) else {
                    continue;
                };
                let slot = totals.entry((*name).to_owned()).or_default();
                if *name == "entries" {
                    if row == 0 {
                        *slot = v;
                    }
                } else {
                    *slot += v;
                }
            }
        }
        Some(Self { totals })
    }

    /// A column's total, 0 when absent.
    pub fn value(&self, name: &str) -> u64 {
        self.totals.get(name).copied().unwrap_or(0)
    }
}

/// TCP states as the kernel numbers them in /proc/net/tcp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TcpState {
    /// 01.
    Established,
    /// 02.
    SynSent,
    /// 03.
    SynRecv,
    /// 04.
    FinWait1,
    /// 05.
    FinWait2,
    /// 06.
    TimeWait,
    /// 07.
    Close,
    /// 08.
    CloseWait,
    /// 09.
    LastAck,
    /// 0A.
    Listen,
    /// 0B.
    Closing,
    /// 0C.
    NewSynRecv,
}

impl TcpState {
    /// Every state, in the kernel's order (index + 1 = its code).
    pub const ALL: [TcpState; 12] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
        TcpState::NewSynRecv,
    ];

    /// The state the kernel numbers `code` (1…12), as in /proc/net/tcp and sock_diag.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }
}

/// An address and port as in a socket table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The address.
    pub ip: IpAddr,
    /// The port.
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}:{}", self.port),
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

impl serde::Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One row of /proc/net/tcp or tcp6.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Socket {
    /// Local end.
    pub local: Endpoint,
    /// Remote end.
    pub remote: Endpoint,
    /// State.
    pub state: TcpState,
    /// For listeners: connections waiting in the accept queue; otherwise unread bytes.
    pub rx_queue: u64,
}

/// Parses a whole /proc/net/tcp or tcp6 table held in memory; malformed rows are skipped. The
/// readers stream instead ([`each_socket`]); this is for recorded tables and tests.
pub fn parse_sockets(text: &str) -> Vec<Socket> {
    text.lines().skip(1).filter_map(parse_socket).collect()
}

/// Hands every row of a /proc/net/tcp or tcp6 table to `each`, a line at a time: the table is
/// never held whole, so memory stays flat however many sockets it lists. The header line and
/// malformed rows are skipped.
pub fn each_socket(mut table: impl BufRead, mut each: impl FnMut(&Socket)) -> io::Result<()> {
    let mut line = String::with_capacity(256);
    let mut header = true;
    loop {
        line.clear();
        if table.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if !std::mem::take(&mut header) {
            if let Some(socket) = parse_socket(&line) {
                each(&socket);
            }
        }
    }
}

/// One table row: `sl local remote st tx_queue:rx_queue …`.
pub fn parse_socket(line: &str) -> Option<Socket> {
    let mut fields = line.split_ascii_whitespace().skip(1);
    let local = parse_endpoint(fields.next()?)?;
    let remote = parse_endpoint(fields.next()?)?;
    let state = TcpState::from_code(u8::from_str_radix(fields.next()?, 16).ok()?)?;
    let (_tx, rx) = fields.next()?.split_once(':')?;
    Some(Socket {
        local,
        remote,
        state,
        rx_queue: u64::from_str_radix(rx, 16).ok()?,
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits `:port` (IPv6). The address is printed as the raw
/// 32-bit words of the in-memory (network order) address, so each word is read in host order.
fn parse_endpoint(text: &str) -> Option<Endpoint> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = [0u8; 16];
    let words = addr.len() / 8;
    if addr.len() % 8 != 0 || !(words == 1 || words == 4) {
        return None;
    }
    for (i, chunk) in bytes.chunks_exact_mut(4).take(words).enumerate() {
        let word = u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    let ip = if words == 1 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(bytes))
    };
    Some(Endpoint { ip, port })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::sockets::SocketTally;

    #[test]
    fn counters_pair_header_and_value_lines() {
        let mut c = Counters::default();
        c.add_text(
            "TcpExt: SyncookiesSent ListenOverflows\nTcpExt: 3 27\nIpExt: InNoRoutes\nIpExt: 1\n",
        );
        c.add_text("Tcp: RtoAlgorithm MaxConn\nTcp: 1 -1\n");
        assert_eq!(c.get("TcpExt.ListenOverflows"), Some(27));
        assert_eq!(c.get("IpExt.InNoRoutes"), Some(1));
        assert_eq!(c.get("Tcp.MaxConn"), Some(0));
        assert_eq!(c.value("TcpExt.Nope"), 0);
    }

    #[test]
    fn conntrack_rows_are_hex_and_summed_per_cpu() {
        let text = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop\n\
                    0000000a  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000002 0000000f 00000001\n\
                    0000000a  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000010 00000000\n";
        let stats = ConntrackStats::parse(text).unwrap();
        assert_eq!(stats.value("entries"), 10);
        assert_eq!(stats.value("drop"), 31);
        assert_eq!(stats.value("insert_failed"), 3);
        assert_eq!(stats.value("early_drop"), 1);
    }

    #[test]
    fn socket_rows_decode_addresses_ports_and_states() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:2328 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
           1: 0100007F:9C41 0100007F:2328 06 00000000:00000000 03:00000F5E 00000000     0        0 0 3 0000000000000000\n";
        let sockets = parse_sockets(tcp);
        assert_eq!(sockets.len(), 2);
        assert_eq!(sockets[0].local.to_string(), "127.0.0.1:9000");
        assert_eq!(
            (sockets[0].state, sockets[0].rx_queue),
            (TcpState::Listen, 2)
        );
        assert_eq!(sockets[1].state, TcpState::TimeWait);
        assert_eq!(sockets[1].local.port, 40001);
        let tcp6 = "header\n   0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:C350 08 00000000:00000000 00:00000000 00000000 0 0 1\n";
        let sockets = parse_sockets(tcp6);
        assert_eq!(sockets[0].local.to_string(), "[::1]:8080");
        assert_eq!(sockets[0].state, TcpState::CloseWait);
    }

    #[test]
    fn tables_stream_into_a_tally_a_line_at_a_time() {
        let mut table = String::from("  sl  local_address rem_address   st tx_queue rx_queue\n");
        for i in 0..50u16 {
            let port = 40000 + i;
            table.push_str(&format!(
                "{i:4}: 0100007F:{port:04X} 0100007F:2328 06 00000000:00000000 03:00000F5E 00000000     0        0 0 3 0000000000000000\n"
            ));
        }
        table.push_str("  50: garbage row\n");
        table.push_str("  51: 0100007F:2328 00000000:0000 0A 00000000:00000004 00:00000000 00000000     0        0 1");
        // A 7-byte buffer splits every row across reads.
        let mut streamed = SocketTally::new(Some((40000, 40999)));
        each_socket(io::BufReader::with_capacity(7, table.as_bytes()), |s| {
            streamed.add(s)
        })
        .unwrap();
        let mut whole = SocketTally::new(Some((40000, 40999)));
        for socket in parse_sockets(&table) {
            whole.add(&socket);
        }
        assert_eq!(streamed, whole);
        assert_eq!(
            streamed.total(),
            51,
            "the header and the garbage row are skipped"
        );
        assert_eq!(streamed.count(TcpState::TimeWait), 50);
        assert_eq!(streamed.ports_in_use(40000, 40999), 50);
        assert_eq!(streamed.backlogged_listeners().values().sum::<u64>(), 4);
    }

    #[test]
    fn malformed_endpoints_are_rejected() {
        for text in [
            "0100007F",
            "0100007:1F90",
            "0100007F0:1F90",
            "0100007F:1F9G0",
            "zz00007F:0050",
            ":0050",
        ] {
            assert_eq!(parse_endpoint(text), None, "{text}");
        }
        assert_eq!(
            parse_endpoint("0100007F:0050").unwrap().to_string(),
            "127.0.0.1:80"
        );
    }
}
