//! Every request the kube client sends, counted by verb and outcome into the process's
//! metrics (a tower layer under the client), so that which replica writes shows in each
//! replica's `/metrics`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The counting service around the client's own.
#[derive(Clone)]
pub struct Count<S>(pub S);

impl<S, B, R> tower::Service<http::Request<B>> for Count<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError>,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let verb = verb(req.method(), req.uri().query().unwrap_or(""));
        let fut = self.0.call(req);
        Box::pin(async move {
            let r = fut.await.map_err(Into::into);
            let outcome = match &r {
                Ok(resp) => outcome(resp.status()),
                // Refused before it left: not a request sent.
                Err(e) if crate::targets::is_lapsed(&**e) => return r,
                Err(_) => "transport",
            };
            crate::metrics::api_request(verb, outcome);
            r
        })
    }
}

/// The verb as Kubernetes names it, as far as the method and query tell.
fn verb(method: &http::Method, query: &str) -> &'static str {
    match *method {
        http::Method::GET
            if query
                .split('&')
                .any(|p| p == "watch=true" || p == "watch=1") =>
        {
            "watch"
        }
        http::Method::GET => "get",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "other",
    }
}

fn outcome(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "ok",
        404 => "404",
        409 => "409",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_and_outcomes_are_named_as_kubernetes_names_them() {
        assert_eq!(
            verb(&http::Method::GET, "labelSelector=a&watch=true"),
            "watch"
        );
        assert_eq!(verb(&http::Method::GET, "labelSelector=a"), "get");
        assert_eq!(verb(&http::Method::PATCH, ""), "patch");
        assert_eq!(verb(&http::Method::DELETE, ""), "delete");
        assert_eq!(outcome(http::StatusCode::CONFLICT), "409");
        assert_eq!(outcome(http::StatusCode::FORBIDDEN), "4xx");
        assert_eq!(outcome(http::StatusCode::BAD_GATEWAY), "5xx");
    }
}
