//! Anonymous clients against `run`'s HTTP server: bodies that are never finished cost a small,
//! fixed amount of memory; one client address holding connections gets its share of the
//! public listener and never the probes; the kubelet's probes answer through it all.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::http::*;
use crate::util::*;

const HOOK: &str = "hook-secret-flood";

/// Resident anonymous memory: the heap and stacks, not the pages of the binary, which grow as
/// code runs for the first time (a debug binary's error paths are megabytes).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn daemon(d: &DirRun, extra: &[&str]) -> Daemon {
    let mut args = d.args(&["run", "--interval", "1h"]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let s = Daemon::start(&args, &[("OCTOSTAGE_GITHUB_SECRET", HOOK)]);
    s.wait(20, "never ready", |d| {
        get(&d.probes, "/readyz").status == 200
    });
    s
}

/// A connection to `to` from the loopback address `from` (127.0.0.0/8 is all loopback).
fn connect_from(from: &str, to: &str) -> std::io::Result<TcpStream> {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )?;
    let from: SocketAddr = format!("{from}:0").parse().unwrap();
    let to: SocketAddr = to.parse().unwrap();
    let (SocketAddr::V4(from), SocketAddr::V4(to)) = (from, to) else {
        unreachable!()
    };
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(from),
    )?;
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(to))?;
    Ok(TcpStream::from(fd))
}

/// A webhook delivery that announces `len` bytes and sends all but the last, signed with a
/// signature of the right form that no one made.
fn unfinished_hook(addr: &str, len: usize) -> Option<TcpStream> {
    let mut c = TcpStream::connect(addr).ok()?;
    c.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let head = format!(
        "POST /hooks/github HTTP/1.1\r\nhost: x\r\nx-github-event: push\r\nx-hub-signature-256: sha256={}\r\ncontent-length: {len}\r\n\r\n",
        "0".repeat(64)
    );
    c.write_all(head.as_bytes()).ok()?;
    // The server may stop reading (its pool is full): what was sent by then stays sent.
    let _ = c.write_all(&vec![b'{'; len - 1]);
    Some(c)
}

#[test]
fn unauthenticated_bodies_cost_a_small_bounded_amount_and_repeated_floods_do_not_add_up() {
    let d = DirRun::new(&days_ago(1));
    // Every connection from this one test address is served: the bound tested here is the
    // bodies', not the per-client one.
    let s = daemon(&d, &["--max-connections-per-client", "256"]);
    let pid = s.child.as_ref().unwrap().id();
    // A signed delivery first, so the baseline includes what serving one costs.
    let body = format!(
        r#"{{"repository":{{"clone_url":"{}"}}}}"#,
        d.repo.path.display()
    );
    let sig = format!("sha256={}", sign(HOOK, body.as_bytes()));
    let h = [
        ("x-github-event", "push"),
        ("x-hub-signature-256", sig.as_str()),
    ];
    assert_eq!(
        request(&s.addr, "POST", "/hooks/github", &h, body.as_bytes()).status,
        202
    );
    let base = rss_kib(pid);
    let addr = s.addr.clone();
    // Three floods one after the other: each is bounded, and what the first leaves with the
    // allocator (freed pages it keeps for reuse) is reused by the next, never added to.
    let mut rounds = vec![];
    for _ in 0..3 {
        let held: Vec<TcpStream> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..256)
                .map(|_| scope.spawn(|| unfinished_hook(&addr, (1 << 20) - 1)))
                .collect();
            threads
                .into_iter()
                .filter_map(|t| t.join().unwrap())
                .collect()
        });
        assert!(held.len() >= 250, "only {} connections opened", held.len());
        std::thread::sleep(Duration::from_millis(500));
        let during = rss_kib(pid);
        // The probes answer meanwhile.
        assert_eq!(get(&s.probes, "/healthz").status, 200);
        drop(held);
        std::thread::sleep(Duration::from_secs(3));
        rounds.push((during, rss_kib(pid)));
    }
    println!(
        "resident anonymous memory: {} MiB before; with 256 unfinished 1 MiB bodies, then after they closed: {}",
        base >> 10,
        rounds
            .iter()
            .map(|(d, a)| format!("{} MiB, {} MiB", d >> 10, a >> 10))
            .collect::<Vec<_>>()
            .join("; ")
    );
    for (during, after) in &rounds {
        assert!(
            *during < base + (32 << 10),
            "256 unfinished bodies took {} MiB",
            (during - base) >> 10
        );
        // The allocator keeps the pages a flood freed for the next one (the check below):
        // what stays is bounded as the flood itself is.
        assert!(
            *after < base + (32 << 10),
            "memory did not return: {} MiB more than before",
            (after.saturating_sub(base)) >> 10
        );
    }
    let (first, last) = (rounds[0].1, rounds[2].1);
    assert!(
        last < first + (4 << 10),
        "each flood left more behind: {} MiB after the first, {} MiB after the third",
        first >> 10,
        last >> 10
    );
    // A body announced over the limit is refused before it is read, and a real delivery is
    // still taken.
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.write_all(
        format!(
            "POST /hooks/github HTTP/1.1\r\nhost: x\r\nx-hub-signature-256: sha256={}\r\ncontent-length: {}\r\n\r\n",
            "0".repeat(64),
            2 << 20
        )
        .as_bytes(),
    )
    .unwrap();
    let mut answer = [0u8; 12];
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 413");
    // A flood delays deliveries while it lasts (503, come back); once its connections are
    // gone and their blocks are back, a real delivery is taken. On a loaded machine the
    // server may notice the closes a moment late: it gets a few seconds.
    let start = std::time::Instant::now();
    loop {
        let status = request(&s.addr, "POST", "/hooks/github", &h, body.as_bytes()).status;
        if status == 202 {
            break;
        }
        assert!(
            status == 503 && start.elapsed() < Duration::from_secs(10),
            "a real delivery after the flood: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Without a well-formed signature nothing of the body is read at all.
    let r = request(
        &s.addr,
        "POST",
        "/hooks/github",
        &[("x-github-event", "push")],
        &[b'{'; 4096],
    );
    assert_eq!(r.status, 401);
}

#[test]
fn one_client_holding_every_public_slot_leaves_the_probes_and_other_clients_answered() {
    let d = DirRun::new(&days_ago(1));
    let s = daemon(&d, &[]);
    // One address opens far more than its share and sends half a request on each.
    let hog: Vec<TcpStream> = (0..300)
        .filter_map(|_| {
            let mut c = connect_from("127.0.0.1", &s.addr).ok()?;
            c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").ok()?;
            Some(c)
        })
        .collect();
    assert!(hog.len() >= 256, "only {} connections opened", hog.len());
    std::thread::sleep(Duration::from_millis(300));
    for path in ["/healthz", "/readyz", "/metrics"] {
        let started = Instant::now();
        let r = get(&s.probes, path);
        let took = started.elapsed();
        println!("{path} on the probe listener: {} in {took:?}", r.status);
        assert_eq!(r.status, 200, "{path}");
        assert!(took < Duration::from_secs(1), "{path} took {took:?}");
    }
    // Another client address still gets the dashboard.
    let mut other = connect_from("127.0.0.2", &s.addr).unwrap();
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = String::new();
    let _ = other.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    // The hogging address got its share and no more: its next connection is closed at once.
    let mut more = connect_from("127.0.0.1", &s.addr).unwrap();
    more.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = more.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
    let mut buf = [0u8; 16];
    let n = more.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "over its share, a client was served");
    // The dashboard is not on the probe listener, and metrics are not on the public one.
    assert_eq!(get(&s.probes, "/").status, 404);
    drop(hog);
    s.wait(5, "the public listener never answered again", |s| {
        std::panic::catch_unwind(|| get(&s.addr, "/metrics").status).ok() == Some(404)
    });
}

#[test]
fn bodies_sent_a_byte_at_a_time_cost_what_they_hold_not_a_buffer_per_byte() {
    let d = DirRun::new(&days_ago(1));
    let s = daemon(&d, &["--max-connections-per-client", "256"]);
    let pid = s.child.as_ref().unwrap().id();
    let base = rss_kib(pid);
    let addr = s.addr.clone();
    // 64 webhook deliveries and 64 dashboard forms (which need no signature header), each
    // sending its body one byte per packet for three seconds.
    let paths = ["/hooks/github", "/stagings/app-main/extend"];
    let peak = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..128)
            .map(|i| {
                let addr = addr.clone();
                let path = paths[i % 2];
                scope.spawn(move || {
                    let Ok(mut c) = TcpStream::connect(&addr) else { return };
                    let _ = c.set_nodelay(true);
                    let head = format!(
                        "POST {path} HTTP/1.1\r\nhost: x\r\nx-github-event: push\r\nx-hub-signature-256: sha256={}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 15000\r\n\r\n",
                        "0".repeat(64)
                    );
                    if c.write_all(head.as_bytes()).is_err() {
                        return;
                    }
                    let start = Instant::now();
                    while start.elapsed() < Duration::from_secs(3) {
                        if c.write_all(b"a").is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
            })
            .collect();
        let mut peak = 0;
        while threads.iter().any(|t| !t.is_finished()) {
            peak = peak.max(rss_kib(pid));
            std::thread::sleep(Duration::from_millis(100));
        }
        peak
    });
    println!(
        "resident anonymous memory: {} MiB before, at most {} MiB while 128 bodies dripped in a byte at a time",
        base >> 10,
        peak >> 10
    );
    assert!(
        peak < base + (32 << 10),
        "bodies sent a byte at a time took {} MiB",
        (peak - base) >> 10
    );
    assert_eq!(get(&s.probes, "/healthz").status, 200);
}

#[test]
fn addresses_that_fill_every_slot_still_leave_room_for_a_new_one() {
    let d = DirRun::new(&days_ago(1));
    let s = daemon(&d, &[]);
    let hold = |to: &str, from: &str, n: usize| -> Vec<TcpStream> {
        (0..n)
            .filter_map(|_| {
                let mut c = connect_from(from, to).ok()?;
                c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").ok()?;
                Some(c)
            })
            .collect()
    };
    // Four addresses take every slot of both listeners (4 x 64 public, 4 x 16 probes).
    let mut held = vec![];
    for i in 1..=4 {
        held.extend(hold(&s.addr, &format!("127.0.0.{i}"), 64));
        held.extend(hold(&s.probes, &format!("127.0.0.{i}"), 16));
    }
    std::thread::sleep(Duration::from_millis(300));
    // A fifth (the kubelet, a new visitor) still gets an answer from each, at once.
    for (addr, path) in [
        (&s.probes, "/healthz"),
        (&s.probes, "/readyz"),
        (&s.addr, "/healthz"),
    ] {
        let started = Instant::now();
        let mut c = connect_from("127.0.0.5", addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        println!(
            "{path} from a fifth address while four hold every slot: {:?} in {:?}",
            answer.lines().next(),
            started.elapsed()
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    drop(held);
}
