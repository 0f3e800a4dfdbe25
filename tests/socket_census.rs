//! The socket census against a real kernel: in a throwaway network namespace, tests/sockets.py
//! (`mix`) holds a table of several TCP states at once (a listener with a full accept queue,
//! TIME_WAIT toward two destinations, CLOSE_WAIT / FIN_WAIT2 pairs, ESTABLISHED pairs, IPv4 and
//! IPv6). The netlink sock_diag dump and the /proc/net/tcp{,6} tables must give identical
//! tallies with the figures the script made, and `doctor` and `health` must print the same
//! whichever source they read (`--proc-net /proc/self/net` forces the tables).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{Netns, Sandbox};
use sysprof::kernel::procnet::{Endpoint, TcpState};
use sysprof::kernel::sockets::diag::{self, Request};
use sysprof::kernel::sockets::{self, SocketTally, Source};

/// tests/sockets.py `mix`, holding its sockets until dropped.
struct Mix(Child);

impl Mix {
    fn start(ns: &Netns) -> Self {
        // On loopback connect() may take over a TIME_WAIT older than a second (tcp_tw_reuse = 2,
        // the default), which would make the TIME_WAIT count depend on the machine's speed.
        ns.write("net.ipv4.tcp_tw_reuse", "0");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "python3"])
            .arg(common::repo().join("tests/sockets.py"))
            .arg("mix")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3 in the namespace");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "tests/sockets.py mix did not get ready"
        );
        Self(child)
    }
}

impl Drop for Mix {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

fn ephemeral(ns: &Netns) -> (u16, u16) {
    let text = ns.read("net.ipv4.ip_local_port_range");
    let mut ports = text.split_whitespace().map(|p| p.parse().unwrap());
    (ports.next().unwrap(), ports.next().unwrap())
}

/// The tallies of each netlink request form and of the /proc tables, read on a thread of this
/// test that enters the namespace (and ends with it): [legacy, per family, /proc].
fn tallies(ns: &Netns, range: (u16, u16)) -> Option<[SocketTally; 3]> {
    let name = ns.name.clone();
    let (dumps, tables) = std::thread::spawn(move || {
        sysprof::kernel::netns::enter(&name).expect("enter the namespace");
        let dump = |requests: &[Request]| {
            let mut tally = SocketTally::new(Some(range));
            diag::dump(requests, &mut tally).map(|()| tally)
        };
        let dumps = dump(&[Request::Legacy]).and_then(|l| Ok((l, dump(&Request::BY_FAMILY)?)));
        let tables = sockets::from_tables(Path::new("/proc/thread-self/net"), Some(range), vec![]);
        (dumps, tables)
    })
    .join()
    .unwrap();
    assert_eq!(tables.origin.source, Source::ProcNet, "{:?}", tables.origin);
    let (legacy, by_family) = match dumps {
        Ok(both) => both,
        Err(why) => {
            let message =
                format!("REAL-KERNEL TEST NOT RUN: netlink sock_diag is unavailable here: {why}");
            if std::env::var("SYSPROF_REQUIRE_NETNS").as_deref() == Ok("1") {
                panic!("{message} (SYSPROF_REQUIRE_NETNS=1)");
            }
            eprintln!("\n!!!!!!!!!! {message} !!!!!!!!!!\n");
            return None;
        }
    };
    Some([legacy, by_family, tables.tally.unwrap()])
}

fn ep(text: &str) -> Endpoint {
    let addr: std::net::SocketAddr = text.parse().unwrap();
    Endpoint {
        ip: addr.ip(),
        port: addr.port(),
    }
}

#[test]
fn netlink_and_proc_tables_tally_the_same_real_sockets() {
    let Some(ns) = Netns::create() else { return };
    let range = ephemeral(&ns);
    let _mix = Mix::start(&ns);
    let Some([netlink, by_family, tables]) = tallies(&ns, range) else {
        return;
    };
    assert_eq!(
        netlink, tables,
        "the one-walk netlink dump and /proc disagree"
    );
    assert_eq!(
        by_family, tables,
        "the per-family netlink dumps and /proc disagree"
    );

    let expected = [
        (TcpState::Listen, 6),
        (TcpState::Established, 2 * 3 + 2 * 7 + 2 * 5),
        (TcpState::SynSent, 2),
        (TcpState::TimeWait, 30 + 11),
        (TcpState::CloseWait, 40),
        (TcpState::FinWait2, 40),
    ];
    assert_eq!(
        netlink.states(),
        expected.into_iter().collect(),
        "{netlink:?}"
    );
    let queues: Vec<_> = netlink.backlogged_listeners().iter().collect();
    assert_eq!(queues, [(&ep("127.0.0.1:9000"), &3)], "a full accept queue");
    let time_wait: Vec<_> = netlink
        .time_wait_by_destination()
        .iter()
        .map(|((local, dest), n)| (local.to_string(), dest.to_string(), *n))
        .collect();
    assert_eq!(
        time_wait,
        [
            ("127.0.0.1".into(), "127.0.0.1:9001".into(), 30),
            ("::1".into(), "[::1]:9005".into(), 11),
        ]
    );
    let close_wait: Vec<_> = netlink.close_wait_by_local().iter().collect();
    assert_eq!(close_wait, [(&ep("127.0.0.1:9002"), &40)]);
    // Client ends: 5 toward the full queue, 30 + 11 in TIME_WAIT, 40 FIN_WAIT2, 7 + 5
    // ESTABLISHED; connect() may give two of them one port toward different destinations.
    let used = netlink.ports_in_use(range.0, range.1);
    assert!((60..=98).contains(&used), "{used} ephemeral ports in use");
    assert_eq!(
        netlink.ports_in_use(9000, 9005),
        4,
        "server ends that do not listen: 9000's queued connections, 9002's CLOSE_WAIT, 9003 and 9004"
    );
}

#[test]
fn doctor_and_health_read_the_same_through_netlink_as_through_the_tables() {
    let Some(ns) = Netns::create() else { return };
    let _mix = Mix::start(&ns);
    let sb = Sandbox::netns(&ns);
    let tables = ["--proc-net", "/proc/self/net"];

    let doctor = |extra: &[&str]| {
        let mut args = vec!["doctor", "--format", "json", "--close-wait", "40"];
        args.extend(extra);
        sb.run(&args).expect(0).json()["diagnosis"].take()
    };
    let (mut via_netlink, mut via_tables) = (doctor(&[]), doctor(&tables));
    assert_eq!(
        via_netlink["sockets_from"]["source"], "netlink",
        "{via_netlink:#}"
    );
    assert_eq!(via_tables["sockets_from"]["source"], "proc_net");
    via_netlink["sockets_from"].take();
    via_tables["sockets_from"].take();
    assert_eq!(via_netlink, via_tables);
    assert_eq!(
        via_netlink["states"]["TIME_WAIT"], 41,
        "states: {:#}",
        via_netlink["states"]
    );
    let checks = via_netlink["checks"].as_array().unwrap();
    let evidence = |id: &str| {
        let check = checks.iter().find(|c| c["id"] == id).unwrap();
        check["evidence"].to_string()
    };
    assert!(
        evidence("listen-overflow").contains("listener 127.0.0.1:9000 has 3 connection(s) waiting"),
        "{}",
        evidence("listen-overflow")
    );
    assert!(evidence("close-wait").contains("40 on local 127.0.0.1:9002"));
    assert!(evidence("ephemeral-ports").contains("30 TIME_WAIT socket(s) toward 127.0.0.1:9001"));

    let p = sb.file(
        "gates.yaml",
        "version: 1\nsysctls: {}\nhealth:\n  gates:\n    sockets.TIME_WAIT: {max: 1000}\n",
    );
    let health = |extra: &[&str]| {
        let mut args = vec![
            "health",
            p.to_str().unwrap(),
            "--over",
            "0s",
            "--format",
            "json",
            "--gate",
            "sockets.CLOSE_WAIT:max=1000",
            "--gate",
            "sockets.ESTABLISHED:max=1000",
            "--gate",
            "ports.ephemeral_used:max=1000",
        ];
        args.extend(extra);
        let json = sb.run(&args).expect(0).json();
        let currents: Vec<(String, f64)> = json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["gate"]["counter"].as_str().unwrap().to_owned(),
                    c["current"].as_f64().unwrap(),
                )
            })
            .collect();
        (currents, json["unavailable"].clone())
    };
    let (netlink, unavailable) = health(&[]);
    assert_eq!(netlink, health(&tables).0);
    assert_eq!(netlink[0], ("sockets.TIME_WAIT".to_owned(), 41.0));
    assert_eq!(netlink[1], ("sockets.CLOSE_WAIT".to_owned(), 40.0));
    assert_eq!(netlink[2], ("sockets.ESTABLISHED".to_owned(), 30.0));
    assert!(
        !unavailable.to_string().contains("netlink"),
        "netlink was not used: {unavailable}"
    );
}
