#!/usr/bin/env python3
"""Produces one TCP failure mode with real sockets, for tests/doctor.rs (and, with `mix`, a table
of several states at once for tests/socket_census.rs).

Run inside a throwaway network namespace (`ip netns exec NS python3 tests/sockets.py MODE`).
Only 127.0.0.1 and 10.99.0.0/24 (a veth inside the namespace) are used; every loop is bounded.
Prints "ready" once the condition exists, then holds its sockets until stdin closes (or 120 s).
"""

import os
import select
import signal
import socket
import struct
import sys
import threading
import time

signal.alarm(120)  # never outlive a stuck test


def hold():
    print("ready", flush=True)
    select.select([sys.stdin], [], [], 110)


def listen(addr, port, backlog):
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(backlog)
    return s


def listen_overflow(count=20):
    """A listener with backlog 1 that never accepts, and a burst of connects."""
    server = listen("127.0.0.1", 9000, 1)
    clients = []
    for _ in range(count):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", 9000))
        clients.append(c)
    time.sleep(0.5)
    hold()
    del server, clients


def serve_until_eof(server, count):
    """Accepts `count` connections; closes each after the peer closed (peer ends in TIME_WAIT)."""
    for _ in range(count):
        conn, _ = server.accept()
        conn.recv(1)
        conn.close()


def short_connections(addr, port, count):
    """`count` connections to one destination, each closed by the client first (so the client
    side ends in TIME_WAIT and the listener stays open)."""
    server = listen(addr, port, 128)
    t = threading.Thread(target=serve_until_eof, args=(server, count), daemon=True)
    t.start()
    for _ in range(count):
        c = socket.create_connection((addr, port))
        c.close()
    t.join(10)
    return server


def time_wait(count=80, port=9001):
    """Many short connections to one destination, closed by the client first."""
    server = short_connections("127.0.0.1", port, count)
    time.sleep(0.3)
    hold()
    del server


def half_closed_pairs(port, count):
    """`count` connections the client half-closes and the server never closes."""
    server = listen("127.0.0.1", port, 128)
    kept = [server]
    for _ in range(count):
        c = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        c.shutdown(socket.SHUT_WR)
        kept += [c, conn]
    return kept


def half_closed(count=40, port=9002):
    """The client closes, the server never does: CLOSE_WAIT on the server, FIN_WAIT2 on the client."""
    kept = half_closed_pairs(port, count)
    time.sleep(0.3)
    hold()
    del kept


def established(addr, port, count):
    """`count` connections accepted and held open: ESTABLISHED at both ends."""
    server = listen(addr, port, 128)
    kept = [server]
    for _ in range(count):
        c = socket.create_connection((addr, port))
        conn, _ = server.accept()
        kept += [c, conn]
    return kept


def full_queue(port, backlog, extra):
    """A listener that never accepts, holding backlog + 1 completed connections (a full accept
    queue), and `extra` clients whose SYNs the full queue drops (they stay in SYN_SENT)."""
    server = listen("127.0.0.1", port, backlog)
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(backlog + 1)]
    for _ in range(extra):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        clients.append(c)
    return [server] + clients


def mix():
    """Several states at once, IPv4 and IPv6, each count distinct: a full accept queue on 9000
    (3 waiting, 2 in SYN_SENT), 30 TIME_WAIT toward 127.0.0.1:9001, 40 CLOSE_WAIT / FIN_WAIT2
    pairs on 9002, 7 ESTABLISHED pairs on 9003 and 5 on [::1]:9004, 11 TIME_WAIT toward
    [::1]:9005."""
    kept = full_queue(9000, 2, 2)
    kept.append(short_connections("127.0.0.1", 9001, 30))
    kept += half_closed_pairs(9002, 40)
    kept += established("127.0.0.1", 9003, 7)
    kept += established("::1", 9004, 5)
    kept.append(short_connections("::1", 9005, 11))
    # Closing is asynchronous: wait until the kernel shows every TIME_WAIT, CLOSE_WAIT and
    # FIN_WAIT2 socket (a loaded machine can take longer than a fixed sleep).
    settle({"06": 41, "08": 40, "05": 40})
    hold()
    del kept


def settle(expected, timeout=10.0):
    """Waits until /proc/net/tcp and tcp6 list `expected` sockets per state code (hex)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = {}
        for name in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
            with open(name) as table:
                for row in table.readlines()[1:]:
                    state = row.split()[3]
                    counts[state] = counts.get(state, 0) + 1
        if all(counts.get(state, 0) == n for state, n in expected.items()):
            return
        time.sleep(0.05)
    # Carry on (the test's own assertions say what differs), but say what was seen.
    print("sockets.py: not settled after %.0f s: want %s, have %s" % (timeout, expected, counts),
          file=sys.stderr)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_segment(src, dst, sport, dport, seq, flags, options=b""):
    offset = (20 + len(options)) // 4
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, offset << 4, flags, 65535, 0, 0) + options
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(header))
    csum = checksum(pseudo + header)
    return header[:16] + struct.pack("!H", csum) + header[18:]


def ip_packet(src, dst, segment):
    # With IP_HDRINCL the kernel fills in the total length, id and header checksum.
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0, 64, 6, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + segment


def raw_send(src, dst, segment):
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.sendto(ip_packet(src, dst, segment), (dst, 0))
    raw.close()


def syn_flood(count=30, backlog=4, port=9003):
    """SYNs from an address whose handshake never completes (10.99.0.5 sits behind a veth that
    answers nothing), so requests pile up in the SYN queue of a listener with a small backlog."""
    server = listen("10.99.0.1", port, backlog)
    for i in range(count):
        raw_send("10.99.0.5", "10.99.0.1", tcp_segment("10.99.0.5", "10.99.0.1", 20000 + i, port, 1000 + i, 0x02))
    time.sleep(0.3)
    hold()
    del server


def tsval_from(packet):
    ihl = (packet[0] & 0x0F) * 4
    tcp = packet[ihl:]
    offset = (tcp[12] >> 4) * 4
    options, i = tcp[20:offset], 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if kind == 8:
            return struct.unpack("!I", options[i + 2:i + 6])[0]
        i += options[i + 1]
    return None


def paws(port=9004, cport=45000):
    """The NAT case: the server holds TIME_WAIT for a 4-tuple, and a second "client behind the same
    address" whose clock is behind reuses it with a SYN carrying an older timestamp."""
    sniff = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    sniff.settimeout(0.2)
    server = listen("127.0.0.1", port, 8)
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind(("127.0.0.1", cport))
    c.connect(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # the server closes first: it keeps the TIME_WAIT
    c.recv(1)
    c.close()
    time.sleep(0.2)
    newest = None
    for _ in range(50):
        try:
            packet = sniff.recv(65535)
        except socket.timeout:
            break
        sport = struct.unpack("!H", packet[(packet[0] & 0x0F) * 4:][:2])[0]
        ts = tsval_from(packet) if sport == cport else None
        if ts is not None:
            newest = ts
    if newest is None:
        sys.exit("no timestamp seen from the client")
    old = (newest - 100000) & 0xFFFFFFFF
    options = struct.pack("!BBHBBBBII", 2, 4, 1460, 1, 1, 8, 10, old, 0)
    raw_send("127.0.0.1", "127.0.0.1", tcp_segment("127.0.0.1", "127.0.0.1", cport, port, 777, 0x02, options))
    time.sleep(0.3)
    hold()


MODES = {
    "listen-overflow": listen_overflow,
    "time-wait": time_wait,
    "half-closed": half_closed,
    "syn-flood": syn_flood,
    "paws": paws,
    "mix": mix,
}

if __name__ == "__main__":
    MODES[sys.argv[1]](*[int(a) for a in sys.argv[2:]])
