//! Accepting connections within limits: at most so many open at once, and at most so many
//! from one client address, so that one client cannot take every slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio_util::sync::CancellationToken;

/// Longest a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes a connection buffers as it reads (hyper's default grows to about 400 KB): with
/// 256 connections open, the difference is 100 MB of buffers. The request's headers must fit.
const READ_BUFFER: usize = 16 << 10;

/// How many connections a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open at once: past it a new one is closed at once, so that a flood of idle connections
    /// cannot take the file descriptors and memory the controller needs.
    pub total: usize,
    /// Open at once from one client address.
    pub per_client: usize,
}

impl Limits {
    /// The public listener's, unless `--max-connections-per-client` says otherwise.
    pub const PUBLIC: Limits = Limits {
        total: 256,
        per_client: 64,
    };
    /// The probe listener's: the kubelet and a metrics scraper, a few connections each.
    pub const PROBES: Limits = Limits {
        total: 64,
        per_client: 16,
    };
}

/// The connections open, by client address, each with the token that closes it. When every
/// slot is taken, a newcomer from an address holding fewer than the address holding most
/// closes that address's oldest connection: the kubelet's one probe connection gets in however
/// many addresses an attacker holds slots from, unless every slot is held by a different
/// address.
#[derive(Default)]
struct Clients(Mutex<Open>);

#[derive(Default)]
struct Open {
    by_ip: HashMap<IpAddr, std::collections::VecDeque<(u64, CancellationToken)>>,
    total: usize,
    next: u64,
}

/// One client's connection, counted until dropped.
struct Slot {
    clients: Arc<Clients>,
    ip: IpAddr,
    id: u64,
    /// Cancelled when a newcomer takes this slot.
    evicted: CancellationToken,
}

impl Clients {
    fn enter(self: &Arc<Self>, ip: IpAddr, limits: Limits) -> Option<Slot> {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mine = open.by_ip.get(&ip).map_or(0, |c| c.len());
        if mine >= limits.per_client {
            return None;
        }
        if open.total >= limits.total {
            let (heaviest, most) = open
                .by_ip
                .iter()
                .map(|(ip, c)| (*ip, c.len()))
                .max_by_key(|(_, n)| *n)?;
            if most <= mine + 1 {
                return None;
            }
            // Its oldest connection goes; the count falls when that task ends.
            let (_, token) = open.by_ip.get_mut(&heaviest)?.pop_front()?;
            token.cancel();
            open.total -= 1;
            if open.by_ip.get(&heaviest).is_some_and(|c| c.is_empty()) {
                open.by_ip.remove(&heaviest);
            }
        }
        let id = open.next;
        open.next += 1;
        let evicted = CancellationToken::new();
        open.by_ip
            .entry(ip)
            .or_default()
            .push_back((id, evicted.clone()));
        open.total += 1;
        Some(Slot {
            clients: self.clone(),
            ip,
            id,
            evicted,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.clients.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(conns) = open.by_ip.get_mut(&self.ip) else {
            return;
        };
        // An evicted slot was taken off the count already.
        let Some(i) = conns.iter().position(|(id, _)| *id == self.id) else {
            return;
        };
        conns.remove(i);
        if conns.is_empty() {
            open.by_ip.remove(&self.ip);
        }
        open.total -= 1;
    }
}

/// Serve `router` on `listener` until `stop`, within `limits`.
pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let clients = Arc::new(Clients::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, for one: wait rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let Some(slot) = clients.enter(peer.ip(), limits) else {
            tracing::debug!(client = %peer.ip(), "connection refused: no slot for this address");
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .max_buf_size(READ_BUFFER)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            tokio::select! {
                _ = conn => {}
                _ = slot.evicted.cancelled() => {}
            }
            drop(slot);
        });
    }
    // Open event streams never end by themselves: they get a moment, then are dropped.
    let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_gets_its_share_and_a_newcomer_takes_a_slot_from_the_heaviest() {
        let c = Arc::new(Clients::default());
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let limits = Limits {
            total: 4,
            per_client: 3,
        };
        let a: Vec<_> = (0..3)
            .map(|_| c.enter(ip("127.0.0.1"), limits).unwrap())
            .collect();
        assert!(c.enter(ip("127.0.0.1"), limits).is_none(), "over its share");
        let b = c.enter(ip("127.0.0.2"), limits).unwrap();
        // Full: a third address takes the oldest slot of the address holding most.
        let newcomer = c.enter(ip("127.0.0.3"), limits).unwrap();
        assert!(a[0].evicted.is_cancelled());
        assert!(!a[1].evicted.is_cancelled() && !b.evicted.is_cancelled());
        // Now 2, 1, 1: nobody holds two more than a newcomer from .2 or .3 would.
        assert!(c.enter(ip("127.0.0.2"), limits).is_none());
        drop(a);
        drop(newcomer);
        drop(b);
        let open = c.0.lock().unwrap();
        assert_eq!((open.total, open.by_ip.len()), (0, 0));
    }
}
