//! The kube client's transport, built here rather than by `kube::Client::try_from` so that
//! the write gate sits where the bytes leave: writes go over their own connections, whose
//! sockets refuse every byte while the gate is closed.
//!
//! A check when a request enters the client is not enough: between that check and the
//! moment hyper writes the request there are task hops, a pool checkout, maybe a TLS
//! handshake. A process paused in that gap (SIGSTOP, a frozen VM) would send the request
//! after it wakes, when another replica may lead; the fault table saw it happen. Here every
//! `poll_write` of a write connection checks the gate first, below TLS, so a request either
//! left before the pause or leaves nothing (a partial request is never complete, and the API
//! server does not act on it). Reads, watches and the Lease use other connections: a
//! follower must read, and the election must write its Lease to lead again.
//!
//! kube's own stack also retries 429/503 below any layer of ours (its `RetryLayer`); that
//! retry would resend a write without asking the gate. It is left out: octostage retries in
//! `retry`, above the gate, each attempt checked again.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use kube::client::{Body, ConfigExt};

use crate::targets::WriteGate;

/// A connection whose writes pass the gate.
pub struct GatedIo<T> {
    io: T,
    gate: WriteGate,
}

impl<T: Read + Unpin> Read for GatedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for GatedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(lapsed) = self.gate.check() {
            return Poll::Ready(Err(io::Error::other(lapsed)));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Err(lapsed) = self.gate.check() {
            return Poll::Ready(Err(io::Error::other(lapsed)));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<T: Connection> Connection for GatedIo<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

/// Connects like `inner`, gating what the connections write.
#[derive(Clone)]
pub struct GatedConnector<C> {
    inner: C,
    gate: WriteGate,
}

impl<C> tower::Service<http::Uri> for GatedConnector<C>
where
    C: tower::Service<http::Uri>,
    C::Future: Send + 'static,
{
    type Response = GatedIo<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let gate = self.gate.clone();
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            Ok(GatedIo {
                io: connecting.await?,
                gate,
            })
        })
    }
}

/// Sends a request over the write connections or the others, by what it does.
#[derive(Clone)]
pub struct Route<R, W> {
    reads: R,
    writes: W,
}

impl<R, W> tower::Service<http::Request<Body>> for Route<R, W>
where
    R: tower::Service<http::Request<Body>, Response = http::Response<hyper::body::Incoming>>,
    W: tower::Service<http::Request<Body>, Response = R::Response>,
    R::Error: Into<tower::BoxError>,
    W::Error: Into<tower::BoxError>,
    R::Future: Send + 'static,
    W::Future: Send + 'static,
{
    type Response = R::Response;
    type Error = tower::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<R::Response, tower::BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), tower::BoxError>> {
        // hyper's clients are always ready (their `poll_ready` is `Ready(Ok)`), so `call`
        // needs no readiness of its own.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if super::gating::gated(req.method(), req.uri().path()) {
            let sending = self.writes.call(req);
            Box::pin(async move { sending.await.map_err(Into::into) })
        } else {
            let sending = self.reads.call(req);
            Box::pin(async move { sending.await.map_err(Into::into) })
        }
    }
}

/// One hyper client as kube builds it (TLS from the config, timeouts), over `connector`.
fn hyper_client<C>(
    config: &kube::Config,
    connector: C,
) -> Result<
    HyperClient<hyper_timeout::TimeoutConnector<hyper_rustls::HttpsConnector<C>>, Body>,
    kube::Error,
>
where
    C: tower::Service<http::Uri> + Clone + Send + Sync + 'static,
    C::Response: Read + Write + Connection + Send + Unpin + 'static,
    C::Future: Send + Unpin + 'static,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tls = config.rustls_https_connector_with_connector(connector)?;
    let mut timed = hyper_timeout::TimeoutConnector::new(tls);
    timed.set_connect_timeout(config.connect_timeout);
    timed.set_read_timeout(config.read_timeout);
    timed.set_write_timeout(config.write_timeout);
    Ok(HyperClient::builder(TokioExecutor::new()).build(timed))
}

fn tcp() -> HttpConnector {
    let mut c = HttpConnector::new();
    // The scheme is https; TLS is added above this connector.
    c.enforce_http(false);
    c
}

/// A client whose every request is counted in the metrics, and whose writes pass `gate`
/// when they enter (outside the count: a refused write is never sent, so never counted as
/// one) and at their connections' sockets.
pub(super) fn client(config: kube::Config, gate: &WriteGate) -> Result<kube::Client, kube::Error> {
    client_over(config, gate, tcp)
}

fn client_over<C>(
    config: kube::Config,
    gate: &WriteGate,
    connector: impl Fn() -> C,
) -> Result<kube::Client, kube::Error>
where
    C: tower::Service<http::Uri> + Clone + Send + Sync + 'static,
    C::Response: Read + Write + Connection + Send + Unpin + 'static,
    C::Future: Send + Unpin + 'static,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let gate = gate.clone();
    Ok(stack(&config, &gate, connector)?
        .with_layer(&tower::layer::layer_fn(super::counting::Count))
        .with_layer(&tower::layer::layer_fn(move |inner| super::gating::Gate {
            inner,
            gate: gate.clone(),
        }))
        .build())
}

/// The client's stack below octostage's own layers: base URI, authentication, extra
/// headers, then the route to the read or the gated write connections.
fn stack<C>(
    config: &kube::Config,
    gate: &WriteGate,
    connector: impl Fn() -> C,
) -> Result<kube::client::ClientBuilder<BoxedStack>, kube::Error>
where
    C: tower::Service<http::Uri> + Clone + Send + Sync + 'static,
    C::Response: Read + Write + Connection + Send + Unpin + 'static,
    C::Future: Send + Unpin + 'static,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Some(proxy) = &config.proxy_url {
        // kube's own stack refuses them too without its proxy features; say so, never
        // connect around the proxy the kubeconfig names.
        return Err(kube::Error::ProxyProtocolUnsupported {
            proxy_url: Box::new(proxy.clone()),
        });
    }
    let reads = hyper_client(config, connector())?;
    let writes = hyper_client(
        config,
        GatedConnector {
            inner: connector(),
            gate: gate.clone(),
        },
    )?;
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .service(Route { reads, writes });
    Ok(kube::client::ClientBuilder::new(
        tower::util::BoxService::new(tower::ServiceExt::map_err(service, Into::into)),
        config.default_namespace.clone(),
    ))
}

pub(super) type BoxedStack = tower::util::BoxService<
    http::Request<Body>,
    http::Response<hyper::body::Incoming>,
    tower::BoxError,
>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use tokio::sync::Semaphore;

    /// A loopback HTTP server that answers `{}` and counts the requests it was sent.
    async fn server() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let answer = hyper::service::service_fn(move |_req| {
                        count.fetch_add(1, Ordering::SeqCst);
                        async {
                            Ok::<_, std::convert::Infallible>(http::Response::new("{}".to_string()))
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(tcp);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, answer)
                        .await;
                });
            }
        });
        (url, seen)
    }

    /// TCP connections that wait for a permit before they connect, and say when they wait:
    /// a process paused after the request was admitted, before its bytes left.
    #[derive(Clone)]
    struct Held {
        entered: Arc<Semaphore>,
        release: Arc<Semaphore>,
    }

    impl tower::Service<http::Uri> for Held {
        type Response = <HttpConnector as tower::Service<http::Uri>>::Response;
        type Error = Box<dyn std::error::Error + Send + Sync>;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, uri: http::Uri) -> Self::Future {
            let held = self.clone();
            Box::pin(async move {
                held.entered.add_permits(1);
                held.release.acquire().await?.forget();
                Ok(tcp().call(uri).await?)
            })
        }
    }

    /// Sends one PATCH through a client over [`Held`] connections; `lapse` runs while the
    /// request waits for its connection, after the gate admitted it.
    async fn patch_while(
        gate: &WriteGate,
        lapse: impl FnOnce(),
    ) -> (Result<String, kube::Error>, usize) {
        let (url, seen) = server().await;
        let held = Held {
            entered: Arc::new(Semaphore::new(0)),
            release: Arc::new(Semaphore::new(0)),
        };
        let config = kube::Config::new(url.parse().unwrap());
        let connector = held.clone();
        let client = client_over(config, gate, move || connector.clone()).unwrap();
        let req = http::Request::patch("/api/v1/namespaces/staging-a")
            .body(b"{}".to_vec())
            .unwrap();
        let sending = tokio::spawn(async move { client.request_text(req).await });
        held.entered.acquire().await.unwrap().forget();
        lapse();
        held.release.add_permits(10);
        let answer = tokio::time::timeout(Duration::from_secs(10), sending)
            .await
            .expect("the request ends")
            .unwrap();
        (answer, seen.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_write_admitted_before_the_lease_lapsed_sends_nothing_after() {
        // The control: with the lease still valid, the same request arrives.
        let gate = WriteGate::closed();
        gate.hold(Instant::now(), Duration::from_secs(60));
        let (answer, seen) = patch_while(&gate, || {}).await;
        assert!(answer.is_ok(), "{answer:?}");
        assert_eq!(seen, 1);

        let gate = WriteGate::closed();
        gate.hold(Instant::now(), Duration::from_secs(60));
        let (answer, seen) = patch_while(&gate, || gate.close()).await;
        assert_eq!(seen, 0, "a write left after the lease lapsed");
        let e = answer.expect_err("refused");
        assert!(super::super::gating::refused(&e), "{e:?}");
        assert_eq!(gate.refusals(), 1);
    }

    #[tokio::test]
    async fn reads_go_out_while_the_gate_is_closed() {
        let (url, seen) = server().await;
        let client = client(
            kube::Config::new(url.parse().unwrap()),
            &WriteGate::closed(),
        )
        .unwrap();
        let req = http::Request::get("/api/v1/namespaces")
            .body(Vec::new())
            .unwrap();
        client.request_text(req).await.unwrap();
        let lease = http::Request::put(
            "/apis/coordination.k8s.io/v1/namespaces/default/leases/octostage-a",
        )
        .body(b"{}".to_vec())
        .unwrap();
        client.request_text(lease).await.unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 2);
    }
}
