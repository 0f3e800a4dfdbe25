//! NETLINK_SOCK_DIAG: the kernel's socket dump, as binary records instead of formatted text.
//!
//! A dump request asks for every TCP socket in the states /proc/net/tcp shows, with no
//! extensions, so each answer is a bare `inet_diag_msg` of ~100 bytes; the reply is a
//! multi-part stream of netlink messages ending in `NLMSG_DONE`, or an `NLMSG_ERROR`. Two request
//! forms ([`Request`]):
//!
//! - `TCPDIAG_GETSOCK` (`struct inet_diag_req`, the original form, still answered by every
//!   kernel): the kernel dumps both address families in one walk of its socket hash;
//! - `SOCK_DIAG_BY_FAMILY` (`struct inet_diag_req_v2`), one request per family, AF_INET then
//!   AF_INET6: two walks of the same hash, since the kernel skips the other family's sockets
//!   one by one (measured with 100,000 IPv4 sockets: the empty IPv6 walk alone costs ~20% of
//!   the IPv4 dump).
//!
//! [`dump_tcp`] uses the single walk and falls back to the per-family requests when the kernel
//! refuses it. Messages are decoded by hand: netlink headers and the queue counters are in host
//! byte order, ports and addresses in network byte order. The socket is opened in the caller's
//! current network namespace, so after `--netns` (setns) this is that namespace's table. This
//! module only decodes and feeds a [`SocketTally`]; choosing it over /proc is `sockets`' job.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, recv, send, socket,
};

use super::SocketTally;
use crate::kernel::procnet::{Endpoint, Socket, TcpState};

/// `struct nlmsghdr`: length, type, flags, sequence, port id.
const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x01;
/// `NLM_F_ROOT | NLM_F_MATCH`.
const NLM_F_DUMP: u16 = 0x300;
const TCPDIAG_GETSOCK: u16 = 18;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const IPPROTO_TCP: u8 = 6;
/// `AF_INET`.
pub const AF_INET: u8 = 2;
/// `AF_INET6`.
pub const AF_INET6: u8 = 10;
/// `struct inet_diag_req`: family, src_len, dst_len, extensions, `inet_diag_sockid` (48 bytes),
/// states, dbs.
const LEGACY_LEN: usize = 60;
/// `struct inet_diag_req_v2`: family, protocol, extensions, pad, states, `inet_diag_sockid`.
const V2_LEN: usize = 56;
/// `struct inet_diag_msg`: family, state, timer, retrans, `inet_diag_sockid` (48 bytes), expires,
/// rqueue, wqueue, uid, inode.
const MSG_LEN: usize = 72;
/// States 1 (ESTABLISHED) … 12 (NEW_SYN_RECV): what /proc/net/tcp lists. Bit 13
/// (BOUND_INACTIVE, bound sockets that neither listen nor connect) is left out, as /proc does.
const ALL_STATES: u32 = 0x1ffe;
/// Larger than the biggest dump message the kernel builds (it caps them near 32 KiB).
const RECV_BUF: usize = 64 * 1024;

/// Why the dump could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiagError {
    /// A system call failed (`socket` refused: no netlink, EPERM under a sandbox, …).
    Sys(&'static str, Errno),
    /// The kernel answered the request with an error (ENOENT: no inet_diag for the family).
    Kernel(Errno),
    /// A reply that does not decode.
    Malformed(String),
}

impl fmt::Display for DiagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sys(call, errno) => write!(f, "{call}: {}", errno.desc()),
            Self::Kernel(errno) => write!(f, "the kernel refused the dump: {}", errno.desc()),
            Self::Malformed(why) => write!(f, "malformed reply: {why}"),
        }
    }
}

/// One dump request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `TCPDIAG_GETSOCK`: IPv4 and IPv6 in one walk.
    Legacy,
    /// `SOCK_DIAG_BY_FAMILY` for one address family ([`AF_INET`] or [`AF_INET6`]).
    ByFamily(u8),
}

impl Request {
    /// The per-family requests covering what one [`Request::Legacy`] covers.
    pub const BY_FAMILY: [Request; 2] = [Request::ByFamily(AF_INET), Request::ByFamily(AF_INET6)];

    /// The netlink message type of the request and of its answers.
    fn kind(self) -> u16 {
        match self {
            Self::Legacy => TCPDIAG_GETSOCK,
            Self::ByFamily(_) => SOCK_DIAG_BY_FAMILY,
        }
    }

    /// The request message, sequence number `seq`.
    pub fn encode(self, seq: u32) -> Vec<u8> {
        let body = match self {
            // Port ids, addresses, interface and cookie stay zero: a dump ignores them, and
            // the kernel dumps every family for this form whatever the family byte says.
            Self::Legacy => {
                let mut b = vec![0u8; LEGACY_LEN];
                b[0] = AF_INET;
                b[52..56].copy_from_slice(&ALL_STATES.to_ne_bytes());
                b
            }
            Self::ByFamily(family) => {
                let mut b = vec![0u8; V2_LEN];
                b[0] = family;
                b[1] = IPPROTO_TCP;
                b[4..8].copy_from_slice(&ALL_STATES.to_ne_bytes());
                b
            }
        };
        let mut m = Vec::with_capacity(NLMSG_HDRLEN + body.len());
        m.extend(((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend(self.kind().to_ne_bytes());
        m.extend((NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        m.extend(seq.to_ne_bytes());
        m.extend(0u32.to_ne_bytes()); // port id 0: the kernel fills in ours
        m.extend(body);
        m
    }
}

/// Dumps every IPv4 and IPv6 TCP socket of the current network namespace into `tally`: one
/// walk ([`Request::Legacy`]), or, if the kernel refuses that before answering anything, the
/// two per-family requests.
pub fn dump_tcp(tally: &mut SocketTally) -> Result<(), DiagError> {
    let fd = open()?;
    let mut buf = vec![0u8; RECV_BUF];
    let mut seq = 0;
    one_walk_or_per_family(tally, |request, tally| {
        seq += 1;
        dump_one(&fd, request, seq, &mut buf, tally)
    })
}

/// The legacy request; the per-family ones only if the kernel refused it outright (a dump that
/// broke off half-way has counted sockets already, and is an error).
fn one_walk_or_per_family(
    tally: &mut SocketTally,
    mut run: impl FnMut(Request, &mut SocketTally) -> Result<(), DiagError>,
) -> Result<(), DiagError> {
    match run(Request::Legacy, tally) {
        Err(DiagError::Kernel(_)) if tally.total() == 0 => Request::BY_FAMILY
            .iter()
            .try_for_each(|request| run(*request, tally)),
        other => other,
    }
}

/// Runs `requests` in turn on one socket, all into `tally`.
pub fn dump(requests: &[Request], tally: &mut SocketTally) -> Result<(), DiagError> {
    let fd = open()?;
    let mut buf = vec![0u8; RECV_BUF];
    for (seq, request) in (1..).zip(requests) {
        dump_one(&fd, *request, seq, &mut buf, tally)?;
    }
    Ok(())
}

fn open() -> Result<OwnedFd, DiagError> {
    socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )
    .map_err(|e| DiagError::Sys("socket(AF_NETLINK, NETLINK_SOCK_DIAG)", e))
}

fn dump_one(
    fd: &OwnedFd,
    request: Request,
    seq: u32,
    buf: &mut [u8],
    tally: &mut SocketTally,
) -> Result<(), DiagError> {
    let message = request.encode(seq);
    let sent =
        send(fd.as_raw_fd(), &message, MsgFlags::empty()).map_err(|e| DiagError::Sys("send", e))?;
    if sent != message.len() {
        return Err(DiagError::Malformed(format!(
            "sent {sent} of {} bytes",
            message.len()
        )));
    }
    let answer = Answer {
        seq,
        kind: request.kind(),
    };
    loop {
        let n = match recv(fd.as_raw_fd(), buf, MsgFlags::empty()) {
            Err(Errno::EINTR) => continue,
            other => other.map_err(|e| DiagError::Sys("recv", e))?,
        };
        if n == 0 {
            return Err(DiagError::Malformed(
                "end of stream before NLMSG_DONE".into(),
            ));
        }
        if let Batch::Done = feed(&buf[..n], answer, tally)? {
            return Ok(());
        }
    }
}

/// What the answers to one request look like: its sequence number and message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The request's sequence number.
    pub seq: u32,
    /// The message type of the socket records (the request's own type).
    pub kind: u16,
}

/// Whether a datagram ended the dump.
#[derive(Debug, PartialEq, Eq)]
pub enum Batch {
    /// More datagrams follow.
    More,
    /// `NLMSG_DONE` was seen.
    Done,
}

/// Decodes one datagram of a dump reply (one or more netlink messages) into `tally`.
pub fn feed(datagram: &[u8], answer: Answer, tally: &mut SocketTally) -> Result<Batch, DiagError> {
    let mut rest = datagram;
    while !rest.is_empty() {
        let (m, next) = split_message(rest)?;
        rest = next;
        if m.seq != answer.seq {
            continue; // not an answer to this request
        }
        match m.kind {
            NLMSG_DONE => return done(m.payload),
            NLMSG_ERROR => return Err(error(m.payload)),
            NLMSG_NOOP => {}
            kind if kind == answer.kind => {
                if let Some(socket) = decode(m.payload)? {
                    tally.add(&socket);
                }
            }
            _ => {}
        }
    }
    Ok(Batch::More)
}

/// One netlink message of a datagram.
struct Message<'a> {
    kind: u16,
    seq: u32,
    payload: &'a [u8],
}

/// The first message of `bytes`, and the bytes after it (it is padded to 4).
fn split_message(bytes: &[u8]) -> Result<(Message<'_>, &[u8]), DiagError> {
    if bytes.len() < NLMSG_HDRLEN {
        return Err(DiagError::Malformed(format!(
            "{} stray byte(s) after the last message",
            bytes.len()
        )));
    }
    let len = u32::from_ne_bytes(bytes[0..4].try_into().unwrap_or_default()) as usize;
    if len < NLMSG_HDRLEN || len > bytes.len() {
        return Err(DiagError::Malformed(format!(
            "message length {len} with {} byte(s) left",
            bytes.len()
        )));
    }
    let kind = u16::from_ne_bytes([bytes[4], bytes[5]]);
    let seq = u32::from_ne_bytes(bytes[8..12].try_into().unwrap_or_default());
    let next = bytes.len().min(len.next_multiple_of(4));
    let payload = &bytes[NLMSG_HDRLEN..len];
    Ok((Message { kind, seq, payload }, &bytes[next..]))
}

/// `NLMSG_DONE` carries the dump's final status: 0, or a negative errno if it broke off.
fn done(payload: &[u8]) -> Result<Batch, DiagError> {
    match status(payload) {
        Some(code) if code < 0 => Err(DiagError::Kernel(Errno::from_raw(-code))),
        _ => Ok(Batch::Done),
    }
}

/// `struct nlmsgerr`: a negative errno, then the request's header.
fn error(payload: &[u8]) -> DiagError {
    match status(payload) {
        Some(code) if code < 0 => DiagError::Kernel(Errno::from_raw(-code)),
        Some(_) => DiagError::Malformed("an acknowledgement where a dump was expected".into()),
        None => DiagError::Malformed("a truncated NLMSG_ERROR".into()),
    }
}

fn status(payload: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(payload.get(0..4)?.try_into().ok()?))
}

/// One `inet_diag_msg` (attributes after it are ignored). `None` for a state this code does not
/// know (a newer kernel's), which is skipped rather than miscounted.
pub fn decode(payload: &[u8]) -> Result<Option<Socket>, DiagError> {
    let Some(m) = payload.get(..MSG_LEN) else {
        return Err(DiagError::Malformed(format!(
            "inet_diag_msg of {} bytes, expected {MSG_LEN}",
            payload.len()
        )));
    };
    let Some(state) = TcpState::from_code(m[1]) else {
        return Ok(None);
    };
    let (local, remote) = match m[0] {
        AF_INET => (
            endpoint_v4(&m[8..12], &m[4..6]),
            endpoint_v4(&m[24..28], &m[6..8]),
        ),
        AF_INET6 => (
            endpoint_v6(&m[8..24], &m[4..6]),
            endpoint_v6(&m[24..40], &m[6..8]),
        ),
        other => return Err(DiagError::Malformed(format!("address family {other}"))),
    };
    // For a listener the kernel reports its accept queue here, as /proc/net/tcp does.
    let rqueue = u32::from_ne_bytes([m[56], m[57], m[58], m[59]]);
    Ok(Some(Socket {
        local,
        remote,
        state,
        rx_queue: u64::from(rqueue),
    }))
}

fn endpoint_v4(addr: &[u8], port: &[u8]) -> Endpoint {
    Endpoint {
        ip: IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
        port: u16::from_be_bytes([port[0], port[1]]),
    }
}

fn endpoint_v6(addr: &[u8], port: &[u8]) -> Endpoint {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(addr);
    Endpoint {
        ip: IpAddr::V6(Ipv6Addr::from(octets)),
        port: u16::from_be_bytes([port[0], port[1]]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: Answer = Answer {
        seq: 1,
        kind: SOCK_DIAG_BY_FAMILY,
    };

    /// A netlink message: header (host order) + payload, padded to 4 bytes.
    fn message(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = (NLMSG_HDRLEN + payload.len()) as u32;
        let mut m = Vec::new();
        m.extend(len.to_ne_bytes());
        m.extend(kind.to_ne_bytes());
        m.extend(2u16.to_ne_bytes()); // NLM_F_MULTI
        m.extend(seq.to_ne_bytes());
        m.extend(4242u32.to_ne_bytes());
        m.extend(payload);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    /// An inet_diag_msg as the kernel lays it out, plus a trailing attribute to be skipped.
    fn diag(family: u8, state: u8, local: (&[u8], u16), remote: (&[u8], u16), rq: u32) -> Vec<u8> {
        let mut m = vec![family, state, 0, 0];
        m.extend(local.1.to_be_bytes());
        m.extend(remote.1.to_be_bytes());
        for addr in [local.0, remote.0] {
            let mut field = [0u8; 16];
            field[..addr.len()].copy_from_slice(addr);
            m.extend(field);
        }
        m.extend([0u8; 12]); // interface, cookie
        for word in [0u32, rq, 7, 0, 99] {
            m.extend(word.to_ne_bytes()); // expires, rqueue, wqueue, uid, inode
        }
        m.extend([5, 0, 8, 0, 3, 0, 0, 0]); // INET_DIAG_SHUTDOWN, one byte, padded
        m
    }

    fn word(bytes: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    /// The state mask asks for exactly the states /proc/net/tcp lists.
    fn assert_table_states(states: u32) {
        for s in TcpState::ALL {
            assert_ne!(states & (1 << (s as u32 + 1)), 0, "{s:?}");
        }
        assert_eq!(states & 1, 0);
        assert_eq!(states >> 13, 0);
    }

    #[test]
    fn requests_ask_for_a_tcp_dump_of_every_table_state() {
        let r = Request::ByFamily(AF_INET6).encode(7);
        assert_eq!(r.len(), 72);
        assert_eq!(word(&r, 0), 72);
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), 20);
        assert_eq!(u16::from_ne_bytes([r[6], r[7]]), 0x301);
        assert_eq!(word(&r, 8), 7);
        assert_eq!(&r[16..20], &[10, 6, 0, 0]);
        assert_table_states(word(&r, 20));
        assert!(r[24..].iter().all(|&b| b == 0));

        let r = Request::Legacy.encode(1);
        assert_eq!(r.len(), 76);
        assert_eq!(word(&r, 0), 76);
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), 18);
        assert_eq!(u16::from_ne_bytes([r[6], r[7]]), 0x301);
        assert_eq!(&r[16..20], &[2, 0, 0, 0]);
        assert!(r[20..68].iter().all(|&b| b == 0), "no socket id filter");
        assert_table_states(word(&r, 68));
        assert_eq!(word(&r, 72), 0);
    }

    #[test]
    fn messages_decode_ports_and_addresses_in_network_order() {
        let v4 = diag(AF_INET, 10, (&[127, 0, 0, 1], 9000), (&[0; 4], 0), 3);
        let s = decode(&v4).unwrap().unwrap();
        assert_eq!(s.local.to_string(), "127.0.0.1:9000");
        assert_eq!(s.remote.to_string(), "0.0.0.0:0");
        assert_eq!((s.state, s.rx_queue), (TcpState::Listen, 3));

        let loopback6 = Ipv6Addr::LOCALHOST.octets();
        let mapped = "::ffff:10.1.2.3".parse::<Ipv6Addr>().unwrap().octets();
        let v6 = diag(AF_INET6, 6, (&loopback6, 40001), (&mapped, 443), 0);
        let s = decode(&v6).unwrap().unwrap();
        assert_eq!(s.local.to_string(), "[::1]:40001");
        assert_eq!(s.remote.to_string(), "[::ffff:10.1.2.3]:443");
        assert_eq!(s.state, TcpState::TimeWait);

        assert_eq!(
            decode(&diag(AF_INET, 13, (&[0; 4], 1), (&[0; 4], 0), 0)),
            Ok(None)
        );
        assert!(matches!(decode(&v4[..40]), Err(DiagError::Malformed(_))));
        assert!(matches!(
            decode(&diag(1, 1, (&[0; 4], 1), (&[0; 4], 0), 0)),
            Err(DiagError::Malformed(_))
        ));
    }

    #[test]
    fn a_multi_part_dump_is_tallied_until_done() {
        let mut tally = SocketTally::new(Some((40000, 40999)));
        let mut first = message(
            SOCK_DIAG_BY_FAMILY,
            1,
            &diag(AF_INET, 10, (&[127, 0, 0, 1], 9000), (&[0; 4], 0), 2),
        );
        first.extend(message(NLMSG_NOOP, 1, &[]));
        first.extend(message(
            SOCK_DIAG_BY_FAMILY,
            1,
            &diag(
                AF_INET,
                6,
                (&[127, 0, 0, 1], 40000),
                (&[127, 0, 0, 1], 9000),
                0,
            ),
        ));
        // A message of another request is not counted.
        first.extend(message(
            SOCK_DIAG_BY_FAMILY,
            9,
            &diag(AF_INET, 1, (&[127, 0, 0, 1], 1), (&[127, 0, 0, 1], 2), 0),
        ));
        assert_eq!(feed(&first, V2, &mut tally), Ok(Batch::More));
        let mut second = message(
            SOCK_DIAG_BY_FAMILY,
            1,
            &diag(
                AF_INET,
                8,
                (&[127, 0, 0, 1], 9000),
                (&[127, 0, 0, 1], 40001),
                0,
            ),
        );
        second.extend(message(NLMSG_DONE, 1, &0i32.to_ne_bytes()));
        assert_eq!(feed(&second, V2, &mut tally), Ok(Batch::Done));
        assert_eq!(tally.total(), 3);
        assert_eq!(tally.count(TcpState::TimeWait), 1);
        assert_eq!(tally.count(TcpState::CloseWait), 1);
        assert_eq!(tally.count(TcpState::Established), 0);
        assert_eq!(tally.backlogged_listeners().values().sum::<u64>(), 2);
        assert_eq!(tally.time_wait_by_destination().len(), 1);
    }

    #[test]
    fn a_legacy_dump_answers_both_families_under_its_own_type() {
        let legacy = Answer {
            seq: 4,
            kind: TCPDIAG_GETSOCK,
        };
        let loopback6 = Ipv6Addr::LOCALHOST.octets();
        let mut reply = message(
            TCPDIAG_GETSOCK,
            4,
            &diag(
                AF_INET,
                1,
                (&[10, 0, 0, 1], 40000),
                (&[10, 0, 0, 2], 443),
                0,
            ),
        );
        reply.extend(message(
            TCPDIAG_GETSOCK,
            4,
            &diag(AF_INET6, 1, (&loopback6, 40001), (&loopback6, 443), 0),
        ));
        // Records of another type are not this dump's.
        reply.extend(message(
            SOCK_DIAG_BY_FAMILY,
            4,
            &diag(AF_INET, 1, (&[10, 0, 0, 1], 1), (&[10, 0, 0, 2], 2), 0),
        ));
        reply.extend(message(NLMSG_DONE, 4, &0i32.to_ne_bytes()));
        let mut tally = SocketTally::default();
        assert_eq!(feed(&reply, legacy, &mut tally), Ok(Batch::Done));
        assert_eq!(tally.count(TcpState::Established), 2);
        assert_eq!(tally.ports_in_use(40000, 40001), 2);
    }

    #[test]
    fn per_family_requests_only_when_the_one_walk_is_refused_outright() {
        let socket = decode(&diag(
            AF_INET,
            1,
            (&[10, 0, 0, 1], 1),
            (&[10, 0, 0, 2], 2),
            0,
        ))
        .unwrap()
        .unwrap();
        /// (the legacy dump's outcome, whether it counted a socket first, the requests made,
        /// whether the whole succeeds)
        type Case = (Result<(), DiagError>, bool, &'static [Request], bool);
        let cases: [Case; 4] = [
            (Ok(()), false, &[Request::Legacy], true),
            (
                Err(DiagError::Kernel(Errno::EOPNOTSUPP)),
                false,
                &[
                    Request::Legacy,
                    Request::ByFamily(AF_INET),
                    Request::ByFamily(AF_INET6),
                ],
                true,
            ),
            (
                Err(DiagError::Kernel(Errno::EINTR)),
                true,
                &[Request::Legacy],
                false,
            ),
            (
                Err(DiagError::Sys("recv", Errno::ENOBUFS)),
                false,
                &[Request::Legacy],
                false,
            ),
        ];
        for (legacy, counted_first, want, ok) in cases {
            let mut tally = SocketTally::default();
            let mut asked = Vec::new();
            let result = one_walk_or_per_family(&mut tally, |request, tally| {
                asked.push(request);
                if request != Request::Legacy {
                    return Ok(());
                }
                if counted_first {
                    tally.add(&socket);
                }
                legacy.clone()
            });
            assert_eq!(asked, want, "{legacy:?}");
            assert_eq!(result.is_ok(), ok, "{legacy:?}");
        }
    }

    #[test]
    fn errors_and_broken_replies_are_reported() {
        let mut tally = SocketTally::default();
        let mut nlmsgerr = (-2i32).to_ne_bytes().to_vec();
        nlmsgerr.extend(&Request::Legacy.encode(1)[..16]);
        let refused = message(NLMSG_ERROR, 1, &nlmsgerr);
        assert_eq!(
            feed(&refused, V2, &mut tally),
            Err(DiagError::Kernel(Errno::ENOENT))
        );
        let broke_off = message(NLMSG_DONE, 1, &(-4i32).to_ne_bytes());
        assert_eq!(
            feed(&broke_off, V2, &mut tally),
            Err(DiagError::Kernel(Errno::EINTR))
        );
        let ack = message(NLMSG_ERROR, 1, &0i32.to_ne_bytes());
        assert!(matches!(
            feed(&ack, V2, &mut tally),
            Err(DiagError::Malformed(_))
        ));
        let mut long = message(NLMSG_DONE, 1, &0i32.to_ne_bytes());
        long[0..4].copy_from_slice(&200u32.to_ne_bytes()); // more bytes than arrived
        assert!(matches!(
            feed(&long, V2, &mut tally),
            Err(DiagError::Malformed(_))
        ));
        let short = message(NLMSG_DONE, 1, &0i32.to_ne_bytes());
        assert!(matches!(
            feed(&short[..10], V2, &mut tally),
            Err(DiagError::Malformed(_))
        ));
        let truncated = message(SOCK_DIAG_BY_FAMILY, 1, &[10, 1, 0, 0]);
        assert!(matches!(
            feed(&truncated, V2, &mut tally),
            Err(DiagError::Malformed(_))
        ));
        assert_eq!(tally.total(), 0);
        assert_eq!(
            DiagError::Kernel(Errno::ENOENT).to_string(),
            "the kernel refused the dump: No such file or directory"
        );
    }
}
