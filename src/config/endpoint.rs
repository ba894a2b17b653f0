//! Where a credential may be sent: `https://`, or plain `http://` to loopback itself. Used when
//! the configuration is validated (an `api_url` of a forge) and before a registry's token
//! endpoint is sent credentials.

/// Why a URL may not receive credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// It does not parse.
    #[error("its token endpoint is not a URL")]
    NotUrl,
    /// It carries a user name or password.
    #[error("its token endpoint carries user information")]
    UserInformation,
    /// Neither https nor http to loopback.
    #[error("its token endpoint is not https")]
    NotHttps,
}

/// `url`, if credentials may go there: `https://`, or plain `http://` to loopback itself (a
/// host parsed, not a prefix: `http://127.0.0.1@evil/` and `http://127.0.0.1.evil.example/`
/// are other hosts), never with user information.
pub fn credential_endpoint(url: &str) -> Result<url::Url, EndpointError> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use url::Host;
    let url = url::Url::parse(url).map_err(|_| EndpointError::NotUrl)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EndpointError::UserInformation);
    }
    let loopback = match url.host() {
        Some(Host::Ipv4(a)) => a == Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(a)) => a == Ipv6Addr::LOCALHOST,
        Some(Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(EndpointError::NotHttps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_only_to_https_or_loopback_itself() {
        for ok in [
            "https://auth.docker.io/token",
            "http://127.0.0.1:5001/token",
            "http://localhost/t",
            "http://[::1]:9/t",
        ] {
            assert!(credential_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://127.0.0.1@127.0.0.2:18081/token",
            "http://localhost@evil.example/",
            "http://127.0.0.1.nip.io:18081/token",
            "http://localhost.attacker.com/",
            "https://user:pw@auth.example.com/",
            "ftp://127.0.0.1/",
            "not a url",
        ] {
            assert!(credential_endpoint(bad).is_err(), "{bad}");
        }
    }
}
