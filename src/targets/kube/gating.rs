//! The write gate under the kube client (a tower layer): a request that changes anything,
//! except the Lease the election itself writes, is sent only while [`WriteGate`] is open,
//! checked when it enters the client and again by each byte's socket (`transport`). A refused
//! request fails with [`Lapsed`], never retried.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::targets::{Lapsed, WriteGate};

/// The gating service around the client's own.
#[derive(Clone)]
pub struct Gate<S> {
    pub inner: S,
    pub gate: WriteGate,
}

/// Whether a request writes something other than a Lease.
pub(super) fn gated(method: &http::Method, path: &str) -> bool {
    let writes = !matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    );
    writes && !path.starts_with("/apis/coordination.k8s.io/")
}

impl<S, B, R> tower::Service<http::Request<B>> for Gate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if gated(req.method(), req.uri().path()) {
            if let Err(lapsed) = self.gate.admit() {
                return Box::pin(async move { Err(Box::new(lapsed) as tower::BoxError) });
            }
        }
        let fut = self.inner.call(req);
        let gate = self.gate.clone();
        Box::pin(async move {
            fut.await.map_err(|e| {
                let e: tower::BoxError = e.into();
                // Refused where its bytes would have left: one error to recognise, counted.
                if crate::targets::is_lapsed(&*e) {
                    gate.refuse();
                    Box::new(Lapsed)
                } else {
                    e
                }
            })
        })
    }
}

/// Whether a kube error is a write the gate refused.
pub(super) fn refused(e: &kube::Error) -> bool {
    match e {
        kube::Error::Service(b) => b.downcast_ref::<Lapsed>().is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_gated_and_reads_and_the_lease_are_not() {
        assert!(gated(&http::Method::PATCH, "/api/v1/namespaces/a-main"));
        assert!(gated(&http::Method::DELETE, "/api/v1/namespaces/a-main"));
        assert!(gated(
            &http::Method::POST,
            "/apis/events.k8s.io/v1/namespaces/a/events"
        ));
        assert!(!gated(&http::Method::GET, "/api/v1/namespaces"));
        assert!(!gated(
            &http::Method::PUT,
            "/apis/coordination.k8s.io/v1/namespaces/default/leases/octostage-a"
        ));
    }
}
