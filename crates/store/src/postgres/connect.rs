//! How the PostgreSQL backend reaches its server.
//!
//! * libpq's TLS parameters in the URL — `sslmode` (`disable`, `prefer` (default), `require`,
//!   `verify-ca`, `verify-full`), `sslrootcert`, `sslcert`, `sslkey` — with libpq's meanings,
//!   on rustls (see [`SslMode`]).
//! * Multi-host URLs (`postgres://u@hostA,hostB/db?target_session_attrs=read-write`) are tried
//!   host by host, each attempt — TCP connect, TLS, start-up, authentication and the session
//!   check — bounded by libpq's `connect_timeout` (default [`DEFAULT_CONNECT_TIMEOUT`]), so a
//!   first host that accepts nothing, or accepts and never answers, does not hide a live second
//!   one.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::Connect;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::StoreError;

/// Per-host connect budget when the URL sets no `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS if the server offers it, else plain; the certificate is not checked (libpq's
    /// default).
    #[default]
    Prefer,
    /// TLS or nothing; the certificate is not checked — unless `sslrootcert` is given, when it
    /// is checked as under `verify-ca` (libpq's rule).
    Require,
    /// TLS; the certificate must chain to a trusted root.
    VerifyCa,
    /// TLS; the certificate must chain to a trusted root and name the host connected to.
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // `allow` means "plain first": we never downgrade on purpose, so it is refused.
            other => {
                return Err(StoreError::internal(format!(
                    "unsupported sslmode in the database URL: {other} \
                     (disable, prefer, require, verify-ca or verify-full)"
                )))
            }
        })
    }
}

/// The connection parameters of the URL that this module handles itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectParams {
    pub ssl_mode: SslMode,
    /// PEM file of the trusted roots; without it, the web PKI's roots and the system's store.
    pub ssl_root_cert: Option<PathBuf>,
    pub ssl_cert: Option<PathBuf>,
    pub ssl_key: Option<PathBuf>,
    /// libpq's `connect_timeout` (per host); `None` = [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Option<Duration>,
}

impl ConnectParams {
    /// Takes `key=value` if it is one of ours; false leaves it to the driver.
    pub fn take(&mut self, key: &str, value: &str) -> Result<bool, StoreError> {
        let path = || Some(PathBuf::from(percent_decode(value)));
        match key {
            "sslmode" => self.ssl_mode = value.parse()?,
            "sslrootcert" => self.ssl_root_cert = path(),
            "sslcert" => self.ssl_cert = path(),
            "sslkey" => self.ssl_key = path(),
            "connect_timeout" => self.connect_timeout = Some(parse_connect_timeout(value)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The budget of one host's attempt.
    pub fn per_host_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }

    /// The rustls client configuration for this mode (under `disable` the driver never uses it,
    /// but wants a connector all the same).
    fn tls_config(&self) -> Result<tls::rustls::ClientConfig, StoreError> {
        use tls::{Anchors, Verification};
        let verification = match (self.ssl_mode, &self.ssl_root_cert) {
            (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => {
                Verification::EncryptOnly
            }
            (SslMode::Require | SslMode::VerifyCa, _) => Verification::ChainOnly,
            (SslMode::VerifyFull, _) => Verification::Full,
        };
        let anchors = match &self.ssl_root_cert {
            Some(file) if file.as_os_str() != "system" => Anchors::Only(file.clone()),
            _ => Anchors::Public {
                extra_ca_files: vec![],
            },
        };
        let identity = match (&self.ssl_cert, &self.ssl_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(tls::ClientIdentity {
                chain: tls::load_certs(cert).map_err(setup_error)?,
                key: tls::load_private_key(key).map_err(setup_error)?,
            }),
            _ => {
                return Err(StoreError::internal(
                    "sslcert and sslkey go together in the database URL",
                ))
            }
        };
        tls::client_config(&anchors, verification, identity, &[b"postgresql"]).map_err(setup_error)
    }

    fn driver_ssl_mode(&self) -> DriverSslMode {
        match self.ssl_mode {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        }
    }
}

fn setup_error(e: tls::TlsSetupError) -> StoreError {
    StoreError::internal(format!("PostgreSQL TLS: {e}"))
}

/// libpq: integer seconds; zero or less waits forever; 1 counts as 2.
fn parse_connect_timeout(value: &str) -> Result<Duration, StoreError> {
    let secs: i64 = value.trim().parse().map_err(|_| {
        StoreError::internal(format!(
            "invalid connect_timeout in the database URL: {value}"
        ))
    })?;
    Ok(match secs {
        ..=0 => Duration::MAX,
        1 => Duration::from_secs(2),
        s => Duration::from_secs(s as u64),
    })
}

/// `%XX` escapes of a URL query value (file paths may hold spaces and the like).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap() * 16 + hex(l).unwrap()) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One host of the URL: what to call it in messages, and the driver's configuration for it.
#[derive(Clone)]
struct Host {
    label: String,
    config: Config,
}

/// Everything needed to open a connection: the hosts in URL order, their TLS, the per-host
/// budget. Cheap to clone; the pool keeps one as its connector.
#[derive(Clone)]
pub struct Connector {
    hosts: Vec<Host>,
    tls: MakeRustlsConnect,
    per_host: Duration,
}

impl Connector {
    /// `url` is the database URL without our own parameters (see [`ConnectParams::take`]);
    /// `tune` adjusts each host's driver configuration (keepalives, application name, …).
    pub fn new(
        url: &str,
        params: &ConnectParams,
        tune: impl Fn(&mut Config),
    ) -> Result<Connector, StoreError> {
        let tls_config = params.tls_config()?;
        let per_host = params.per_host_timeout();
        let hosts = split_hosts(url)
            .into_iter()
            .map(|(label, url)| {
                let mut config: Config = url.parse().map_err(|e| {
                    StoreError::internal(format!(
                        "invalid PostgreSQL URL {}: {e}",
                        crate::redact_url(&url)
                    ))
                })?;
                config.ssl_mode(params.driver_ssl_mode());
                if per_host != Duration::MAX {
                    config.connect_timeout(per_host);
                }
                tune(&mut config);
                Ok(Host { label, config })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Connector {
            hosts,
            tls: MakeRustlsConnect::new(tls_config),
            per_host,
        })
    }

    /// The longest a whole connection attempt over every host may take.
    pub fn total_budget(&self) -> Duration {
        self.per_host.saturating_mul(self.hosts.len() as u32)
    }

    /// Connects to the first host that answers (and, with `target_session_attrs`, suits); every
    /// host's failure is kept for the error.
    async fn connect_any(
        &self,
    ) -> Result<
        (
            Client,
            tokio_postgres::Connection<tokio_postgres::Socket, TlsStream>,
        ),
        Failures,
    > {
        let mut failures = Failures::default();
        for host in &self.hosts {
            let attempt = host.config.connect(self.tls.clone());
            match tokio::time::timeout(self.per_host, attempt).await {
                Ok(Ok(connected)) => return Ok(connected),
                Ok(Err(e)) => failures.push(&host.label, HostFailure::Driver(e)),
                Err(_) => failures.push(&host.label, HostFailure::NoAnswer(self.per_host)),
            }
            if let Some((label, why)) = failures.list.last() {
                tracing::warn!(host = %label, error = %why.describe(label), "PostgreSQL host not reached");
            }
        }
        Err(failures)
    }

    /// A connection attempt made only to tell, at start-up, why no host can be used (bad
    /// certificate, no TLS under `require`, wrong password, …), naming each host's cause.
    pub async fn check(&self) -> Result<(), StoreError> {
        match self.connect_any().await {
            Ok((client, connection)) => {
                drop(client);
                let _ = connection.await;
                Ok(())
            }
            Err(f) => Err(f.into_store_error()),
        }
    }
}

type TlsStream =
    <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream;

impl Connect for Connector {
    fn connect(
        &self,
        _pg_config: &Config,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<(Client, JoinHandle<()>), tokio_postgres::Error>,
                > + Send
                + '_,
        >,
    > {
        Box::pin(async move {
            let (client, connection) = self.connect_any().await.map_err(Failures::into_driver)?;
            let task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "PostgreSQL connection ended");
                }
            });
            Ok((client, task))
        })
    }
}

enum HostFailure {
    Driver(tokio_postgres::Error),
    NoAnswer(Duration),
}

impl HostFailure {
    /// The cause in words; TLS failures as [`tls::HandshakeFailure`] says them.
    fn describe(&self, label: &str) -> String {
        match self {
            HostFailure::NoAnswer(t) => format!("no answer within {} ms", t.as_millis()),
            HostFailure::Driver(e) => match tls::find_tls_error(e) {
                Some(error) => {
                    let host = label.rsplit_once(':').map_or(label, |(h, _)| h);
                    tls::HandshakeFailure { error, host }.to_string()
                }
                None => match std::error::Error::source(e) {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                },
            },
        }
    }
}

#[derive(Default)]
struct Failures {
    list: Vec<(String, HostFailure)>,
}

impl Failures {
    fn push(&mut self, label: &str, failure: HostFailure) {
        self.list.push((label.to_string(), failure));
    }

    /// `Unavailable` (a prompt 503, retried later) naming every host's cause.
    fn into_store_error(self) -> StoreError {
        let causes: Vec<String> = self
            .list
            .iter()
            .map(|(label, why)| format!("{label}: {}", why.describe(label)))
            .collect();
        StoreError::unavailable(format!(
            "cannot connect to PostgreSQL ({})",
            causes.join("; ")
        ))
    }

    /// The pool wants the driver's error type: the last host's error.
    fn into_driver(self) -> tokio_postgres::Error {
        match self.list.into_iter().last() {
            Some((_, HostFailure::Driver(e))) => e,
            _ => tokio_postgres::Error::__private_api_timeout(),
        }
    }
}

/// One URL per host of a multi-host URL (`scheme://user@h1:p1,h2:p2/db?q` → `…@h1:p1/db?q`,
/// `…@h2:p2/db?q`), labelled `host:port`. Key-value strings and URLs with one host are returned
/// as they are (hosts given as `host=` parameters are then tried by the driver in one attempt).
fn split_hosts(url: &str) -> Vec<(String, String)> {
    let Some(u) = UrlParts::of(url) else {
        return vec![("the server".into(), url.to_string())];
    };
    u.hosts
        .split(',')
        .map(|h| {
            (
                h.to_string(),
                format!("{}://{}{h}{}", u.scheme, u.userinfo, u.tail),
            )
        })
        .collect()
}

/// A URL split around its host list: `scheme://userinfo@hosts tail` (userinfo keeps its `@`).
struct UrlParts<'a> {
    scheme: &'a str,
    userinfo: &'a str,
    hosts: &'a str,
    tail: &'a str,
}

impl<'a> UrlParts<'a> {
    /// `None` for a key-value connection string.
    fn of(url: &'a str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(at) => authority.split_at(at + 1),
            None => ("", authority),
        };
        Some(UrlParts {
            scheme,
            userinfo,
            hosts,
            tail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_parameters_are_ours_and_keep_libpq_meanings() {
        let mut p = ConnectParams::default();
        assert_eq!(p.ssl_mode, SslMode::Prefer);
        assert!(p.take("sslmode", "verify-full").unwrap());
        assert!(p.take("sslrootcert", "/tmp/a%20b/root.crt").unwrap());
        assert!(p.take("connect_timeout", "1").unwrap());
        assert!(!p.take("application_name", "x").unwrap());
        assert_eq!(p.ssl_mode, SslMode::VerifyFull);
        assert_eq!(p.ssl_root_cert, Some(PathBuf::from("/tmp/a b/root.crt")));
        assert_eq!(p.per_host_timeout(), Duration::from_secs(2));
        p.take("connect_timeout", "0").unwrap();
        assert_eq!(p.per_host_timeout(), Duration::MAX);
        assert!(p.take("sslmode", "allow").is_err());
        assert!(p.take("connect_timeout", "soon").is_err());
    }

    #[test]
    fn multi_host_urls_become_one_url_per_host() {
        let hosts = split_hosts(
            "postgres://u:p%40ss@a.example:5432,[::1]:5433,b/db?target_session_attrs=read-write",
        );
        assert_eq!(
            hosts,
            vec![
                (
                    "a.example:5432".to_string(),
                    "postgres://u:p%40ss@a.example:5432/db?target_session_attrs=read-write"
                        .to_string()
                ),
                (
                    "[::1]:5433".to_string(),
                    "postgres://u:p%40ss@[::1]:5433/db?target_session_attrs=read-write".to_string()
                ),
                (
                    "b".to_string(),
                    "postgres://u:p%40ss@b/db?target_session_attrs=read-write".to_string()
                ),
            ]
        );
        assert_eq!(
            split_hosts("postgresql://h:1/db"),
            vec![("h:1".to_string(), "postgresql://h:1/db".to_string())]
        );
        assert_eq!(split_hosts("host=a user=b").len(), 1);
    }

    #[test]
    fn client_certificate_needs_its_key() {
        let mut p = ConnectParams::default();
        p.take("sslmode", "require").unwrap();
        p.take("sslcert", "/nonexistent.crt").unwrap();
        let e = p.tls_config().unwrap_err();
        assert!(
            e.to_string().contains("sslcert and sslkey go together"),
            "{e}"
        );
    }
}
