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

/// Connections open per client address.
#[derive(Default)]
struct Clients(Mutex<HashMap<IpAddr, usize>>);

/// One client's connection, counted until dropped.
struct Slot {
    clients: Arc<Clients>,
    ip: IpAddr,
}

impl Clients {
    fn enter(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<Slot> {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Slot {
            clients: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.clients.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serve `router` on `listener` until `stop`, within `limits`.
pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.total));
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
        let Some(slot) = clients.enter(peer.ip(), limits.per_client) else {
            tracing::debug!(client = %peer.ip(), "connection refused: {} are open from this address", limits.per_client);
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!("connection refused: {} are open", limits.total);
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
            let _ = conn.await;
            drop((permit, slot));
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
    fn one_address_gets_its_share_and_the_slot_comes_back_when_dropped() {
        let c = Arc::new(Clients::default());
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| c.enter(a, 3).unwrap()).collect();
        assert!(c.enter(a, 3).is_none());
        assert!(c.enter(b, 3).is_some());
        drop(held);
        assert!(c.enter(a, 3).is_some());
        assert!(c.0.lock().unwrap().is_empty());
    }
}
