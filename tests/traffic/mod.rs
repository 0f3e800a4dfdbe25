//! Real TCP traffic inside a test's network namespace, to move kernel counters: a listener with
//! backlog 1 that never accepts, and a burst of non-blocking connects to it on 127.0.0.1. The
//! accept queue overflows at once (TcpExt.ListenOverflows, ListenDrops) and keeps overflowing
//! while the clients retransmit their SYNs. Every loop is bounded; loopback only.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const BURST: &str = r#"
import socket, sys, time
port, hold = int(sys.argv[1]), float(sys.argv[2])
key, want = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else ("", "")
deadline = time.time() + 60
while key and time.time() < deadline:  # wait (bounded) for the change under watch to land
    if open(key).read().split() == want.split():
        break
    time.sleep(0.05)
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(1)  # backlog 1 and never accept(): the accept queue fills at once
clients = []
for _ in range(40):
    c = socket.socket()
    c.setblocking(False)
    c.connect_ex(("127.0.0.1", port))
    clients.append(c)
print("burst", flush=True)
time.sleep(hold)
"#;

/// A running traffic generator, killed on drop.
pub struct Burst {
    child: Child,
}

impl Burst {
    /// Starts the burst in namespace `ns` now, holding the sockets for `hold` seconds.
    pub fn now(ns: &str, port: u16, hold: f64) -> Self {
        Self::spawn(ns, port, hold, None)
    }

    /// Starts it once the sysctl file `key_path` (inside the namespace) reads `want`.
    pub fn when(ns: &str, port: u16, hold: f64, key_path: &str, want: &str) -> Self {
        Self::spawn(ns, port, hold, Some((key_path, want)))
    }

    fn spawn(ns: &str, port: u16, hold: f64, wait: Option<(&str, &str)>) -> Self {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, "python3", "-c", BURST])
            .arg(port.to_string())
            .arg(hold.to_string());
        if let Some((key, want)) = wait {
            cmd.args([key, want]);
        }
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs inside the namespace (install python3)");
        Self { child }
    }

    /// Blocks until the connections went out (or the generator ended).
    pub fn wait_fired(&mut self) -> bool {
        let out = self.child.stdout.take().expect("stdout piped");
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .any(|l| l == "burst")
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TcpExt counter inside the namespace, read independently of sysprof.
pub fn tcpext(ns: &str, name: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/netstat"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    let names = lines[0].split_whitespace();
    let values = lines[1].split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("TcpExt.{name} not in /proc/net/netstat"))
}
