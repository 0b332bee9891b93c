//! Configuration: defaults → optional TOML file (`--config`) → environment → flags, validated at
//! start-up so a bad setting fails fast with a clear message. Every flag has an environment
//! variable `PROSPECT_EVENTS_<FLAG>`; the database URL also reads `DATABASE_URL`.

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/prospect-events.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_EVENT_RETENTION: &str = "400d";

#[derive(Args, Clone, Debug, Default)]
pub struct DbArgs {
    /// Database URL: sqlite://PATH (default sqlite://./data/prospect-events.db) or postgres://…
    #[arg(long, env = "PROSPECT_EVENTS_DATABASE_URL")]
    pub database_url: Option<String>,
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long, env = "PROSPECT_EVENTS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "PROSPECT_EVENTS_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Args, Clone, Debug, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Address to listen on.
    #[arg(long, env = "PROSPECT_EVENTS_LISTEN")]
    pub listen: Option<String>,
    /// Requests per minute per API key (0 = off; default 200).
    #[arg(long, env = "PROSPECT_EVENTS_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Allow webhook deliveries to loopback/private/link-local addresses (tests, local dev).
    #[arg(long, env = "PROSPECT_EVENTS_ALLOW_PRIVATE_TARGETS")]
    pub allow_private_targets: bool,
    /// Retry delays after failed deliveries, e.g. 5s,5m,30m,2h,5h,10h,10h.
    #[arg(long, env = "PROSPECT_EVENTS_RETRY_SCHEDULE")]
    pub retry_schedule: Option<String>,
    /// Timeout of one delivery attempt (default 15s).
    #[arg(long, env = "PROSPECT_EVENTS_DELIVERY_TIMEOUT")]
    pub delivery_timeout: Option<String>,
    /// How long a claimed notification is reserved for one worker; after a crash it is
    /// delivered again once this passes (default 120s; must exceed the delivery timeout).
    #[arg(long, env = "PROSPECT_EVENTS_DELIVERY_LEASE")]
    pub delivery_lease: Option<String>,
    /// Disable a webhook after failing continuously this long (default 5d).
    #[arg(long, env = "PROSPECT_EVENTS_DISABLE_AFTER")]
    pub disable_after: Option<String>,
    /// Days ahead an anniversary is announced (default 7).
    #[arg(long, env = "PROSPECT_EVENTS_ANNIVERSARY_LEAD_DAYS")]
    pub anniversary_lead_days: Option<u32>,
    /// Interval of the anniversary scanner (default 24h).
    #[arg(long, env = "PROSPECT_EVENTS_SCAN_INTERVAL")]
    pub scan_interval: Option<String>,
    /// Keep events this long (default 400d).
    #[arg(long, env = "PROSPECT_EVENTS_EVENT_RETENTION")]
    pub event_retention: Option<String>,
    /// Largest accepted request body in bytes (default 1048576).
    #[arg(long, env = "PROSPECT_EVENTS_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Longest snapshot line the admin ingestion endpoint accepts, in bytes (default 1048576).
    #[arg(long, env = "PROSPECT_EVENTS_MAX_LINE_BYTES")]
    pub max_line_bytes: Option<usize>,
    /// A request head must arrive within this time, else the connection is closed (default 10s).
    #[arg(long, env = "PROSPECT_EVENTS_HTTP_HEADER_TIMEOUT")]
    pub http_header_timeout: Option<String>,
    /// Close a keep-alive connection idle this long (default 60s).
    #[arg(long, env = "PROSPECT_EVENTS_HTTP_IDLE_TIMEOUT")]
    pub http_idle_timeout: Option<String>,
    /// Connections served at once; more wait in the listen backlog (default 1024).
    #[arg(long, env = "PROSPECT_EVENTS_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Do not run the delivery worker.
    #[arg(long, env = "PROSPECT_EVENTS_NO_WORKER")]
    pub no_worker: bool,
    /// Do not run the anniversary scanner.
    #[arg(long, env = "PROSPECT_EVENTS_NO_SCANNER")]
    pub no_scanner: bool,
    /// Do not serve the API.
    #[arg(long, env = "PROSPECT_EVENTS_NO_API")]
    pub no_api: bool,
    /// PEM bundle of extra CAs trusted for https:// webhook receivers (a private PKI), besides
    /// the public web PKI roots and the system's store. Certificates are always verified.
    #[arg(long, env = "PROSPECT_EVENTS_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<PathBuf>,
    /// PEM certificate chain: serve the API over HTTPS (needs --tls-key).
    #[arg(long, env = "PROSPECT_EVENTS_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "PROSPECT_EVENTS_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The optional TOML file: the same names as the flags, with underscores.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    log_format: Option<LogFormat>,
    listen: Option<String>,
    rate_limit: Option<u32>,
    allow_private_targets: Option<bool>,
    retry_schedule: Option<String>,
    delivery_timeout: Option<String>,
    delivery_lease: Option<String>,
    disable_after: Option<String>,
    anniversary_lead_days: Option<u32>,
    scan_interval: Option<String>,
    event_retention: Option<String>,
    max_body_bytes: Option<usize>,
    max_line_bytes: Option<usize>,
    http_header_timeout: Option<String>,
    http_idle_timeout: Option<String>,
    max_connections: Option<usize>,
    no_worker: Option<bool>,
    no_scanner: Option<bool>,
    no_api: Option<bool>,
    webhook_ca_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

impl FileConfig {
    fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }
}

/// Settings every database-touching subcommand needs.
#[derive(Clone)]
pub struct DbConfig {
    pub database_url: String,
    pub log_format: LogFormat,
}

impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("database_url", &store::redact_url(&self.database_url))
            .field("log_format", &self.log_format)
            .finish()
    }
}

impl DbConfig {
    pub fn load(args: &DbArgs) -> Result<Self> {
        let file = FileConfig::load(args.config.as_deref())?;
        Self::resolve(args, &file)
    }

    fn resolve(args: &DbArgs, file: &FileConfig) -> Result<Self> {
        let database_url = args
            .database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok().filter(|s| !s.is_empty()))
            .or_else(|| file.database_url.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        if !(database_url.starts_with("sqlite://")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            bail!("--database-url must start with sqlite:// or postgres://");
        }
        Ok(Self {
            database_url,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
        })
    }
}

/// Everything `serve` needs, resolved and validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub db: DbConfig,
    pub log_format: LogFormat,
    pub listen: String,
    pub rate_limit: u32,
    pub allow_private_targets: bool,
    pub retry_schedule: Vec<Duration>,
    pub delivery_timeout: Duration,
    pub delivery_lease: Duration,
    pub disable_after: Duration,
    pub anniversary_lead_days: u32,
    pub scan_interval: Duration,
    pub event_retention: Duration,
    pub max_body_bytes: usize,
    pub max_line_bytes: usize,
    pub http_header_timeout: Duration,
    pub http_idle_timeout: Duration,
    pub max_connections: usize,
    pub worker: bool,
    pub scanner: bool,
    pub api: bool,
    /// Extra trusted CAs for webhook receivers.
    pub webhook_ca_file: Option<PathBuf>,
    /// Serve the API over HTTPS with this certificate and key (plain HTTP without).
    pub tls: Option<ServerTls>,
}

/// The HTTPS API's certificate chain and private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ServeConfig {
    pub fn load(args: ServeArgs) -> Result<Self> {
        let file = FileConfig::load(args.db.config.as_deref())?;
        let db = DbConfig::resolve(&args.db, &file)?;
        let dur = |flag: &str, v: Option<String>, f: Option<String>, d: &str| -> Result<Duration> {
            let s = v.or(f).unwrap_or_else(|| d.to_string());
            parse_duration(&s).with_context(|| format!("--{flag}: invalid duration {s:?}"))
        };
        let schedule = args
            .retry_schedule
            .or(file.retry_schedule)
            .unwrap_or_else(|| "5s,5m,30m,2h,5h,10h,10h".into());
        let retry_schedule = schedule
            .split(',')
            .map(|s| parse_duration(s.trim()))
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("--retry-schedule: invalid schedule {schedule:?}"))?;
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        listen.parse::<std::net::SocketAddr>().with_context(|| {
            format!("--listen: {listen:?} is not an address like 127.0.0.1:8080")
        })?;
        let max_body_bytes = args
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(1024 * 1024);
        if max_body_bytes == 0 {
            bail!("--max-body-bytes must be positive");
        }
        let max_line_bytes = args
            .max_line_bytes
            .or(file.max_line_bytes)
            .unwrap_or(ingest::DEFAULT_MAX_LINE_BYTES);
        if max_line_bytes == 0 {
            bail!("--max-line-bytes must be positive");
        }
        let max_connections = args
            .max_connections
            .or(file.max_connections)
            .unwrap_or(1024);
        if !(1..=u32::MAX as usize).contains(&max_connections) {
            bail!("--max-connections must be between 1 and {}", u32::MAX);
        }
        if retry_schedule.is_empty() || retry_schedule.iter().any(|d| d.is_zero()) {
            bail!("--retry-schedule needs at least one positive delay");
        }
        let cfg = Self {
            log_format: db.log_format,
            db,
            listen,
            rate_limit: args.rate_limit.or(file.rate_limit).unwrap_or(200),
            allow_private_targets: args.allow_private_targets
                || file.allow_private_targets.unwrap_or(false),
            retry_schedule,
            delivery_timeout: dur(
                "delivery-timeout",
                args.delivery_timeout,
                file.delivery_timeout,
                "15s",
            )?,
            delivery_lease: dur(
                "delivery-lease",
                args.delivery_lease,
                file.delivery_lease,
                "120s",
            )?,
            disable_after: dur(
                "disable-after",
                args.disable_after,
                file.disable_after,
                "5d",
            )?,
            anniversary_lead_days: args
                .anniversary_lead_days
                .or(file.anniversary_lead_days)
                .unwrap_or(7),
            scan_interval: dur(
                "scan-interval",
                args.scan_interval,
                file.scan_interval,
                "24h",
            )?,
            event_retention: dur(
                "event-retention",
                args.event_retention,
                file.event_retention,
                DEFAULT_EVENT_RETENTION,
            )?,
            max_body_bytes,
            max_line_bytes,
            http_header_timeout: dur(
                "http-header-timeout",
                args.http_header_timeout,
                file.http_header_timeout,
                "10s",
            )?,
            http_idle_timeout: dur(
                "http-idle-timeout",
                args.http_idle_timeout,
                file.http_idle_timeout,
                "60s",
            )?,
            max_connections,
            worker: !(args.no_worker || file.no_worker.unwrap_or(false)),
            scanner: !(args.no_scanner || file.no_scanner.unwrap_or(false)),
            api: !(args.no_api || file.no_api.unwrap_or(false)),
            webhook_ca_file: args.webhook_ca_file.or(file.webhook_ca_file),
            tls: match (
                args.tls_cert.or(file.tls_cert),
                args.tls_key.or(file.tls_key),
            ) {
                (Some(cert), Some(key)) => Some(ServerTls { cert, key }),
                (None, None) => None,
                _ => bail!("--tls-cert and --tls-key go together"),
            },
        };
        if cfg.http_header_timeout.is_zero() || cfg.http_idle_timeout.is_zero() {
            bail!("--http-header-timeout and --http-idle-timeout must be positive");
        }
        if cfg.delivery_lease <= cfg.delivery_timeout {
            bail!("--delivery-lease must be longer than --delivery-timeout");
        }
        Ok(cfg)
    }
}

/// The settings `ingest` shares with `serve` (flag → environment → `--config` file → default),
/// so that the CLI applies the retention and line limit the server does.
#[derive(Clone, Copy, Debug)]
pub struct IngestSettings {
    pub event_retention: Duration,
    pub max_line_bytes: usize,
}

impl IngestSettings {
    pub fn load(
        db: &DbArgs,
        event_retention: Option<String>,
        max_line_bytes: Option<usize>,
    ) -> Result<Self> {
        let file = FileConfig::load(db.config.as_deref())?;
        let retention = event_retention
            .or(file.event_retention)
            .unwrap_or_else(|| DEFAULT_EVENT_RETENTION.into());
        let max_line_bytes = max_line_bytes
            .or(file.max_line_bytes)
            .unwrap_or(ingest::DEFAULT_MAX_LINE_BYTES);
        if max_line_bytes == 0 {
            bail!("--max-line-bytes must be positive");
        }
        Ok(Self {
            event_retention: parse_duration(&retention)
                .with_context(|| format!("--event-retention: invalid duration {retention:?}"))?,
            max_line_bytes,
        })
    }
}

/// Parses `500ms`, `5s`, `5m`, `2h`, `5d` (a bare number means seconds).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        bail!("expected a number followed by ms, s, m, h or d");
    }
    let n: u64 = num.parse().context("number too large")?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => bail!("unknown unit {other:?} (use ms, s, m, h or d)"),
    };
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .context("duration too large")
}

pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colors only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("5d").unwrap(), Duration::from_secs(432_000));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn defaults_then_file_then_flags() {
        let file: FileConfig =
            toml::from_str("rate_limit = 10\nlisten = \"127.0.0.1:9999\"").unwrap();
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
        let dir = std::env::temp_dir().join(format!("pe-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "rate_limit = 10\nlisten = \"127.0.0.1:9999\"").unwrap();
        let mut args = ServeArgs::default();
        args.db.config = Some(path.clone());
        args.db.database_url = Some("sqlite://./x.db".into());
        let cfg = ServeConfig::load(args.clone()).unwrap();
        assert_eq!(cfg.rate_limit, file.rate_limit.unwrap());
        assert_eq!(cfg.listen, "127.0.0.1:9999");
        assert_eq!(cfg.retry_schedule.len(), 7);
        assert_eq!(cfg.delivery_timeout, Duration::from_secs(15));
        assert_eq!(cfg.http_header_timeout, Duration::from_secs(10));
        assert_eq!(cfg.http_idle_timeout, Duration::from_secs(60));
        assert_eq!(cfg.max_connections, 1024);
        args.rate_limit = Some(0);
        assert_eq!(ServeConfig::load(args.clone()).unwrap().rate_limit, 0);
        assert_eq!(ServeConfig::load(args.clone()).unwrap().tls, None);
        args.tls_cert = Some("server.crt".into());
        let e = ServeConfig::load(args.clone()).unwrap_err();
        assert_eq!(e.to_string(), "--tls-cert and --tls-key go together");
        args.tls_key = Some("server.key".into());
        assert_eq!(
            ServeConfig::load(args).unwrap().tls,
            Some(ServerTls {
                cert: "server.crt".into(),
                key: "server.key".into()
            })
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// `ingest` resolves the retention and the line limit as `serve` does: flag (or
    /// environment, via clap) → the `--config` file → the default.
    #[test]
    fn ingest_settings_follow_the_serve_configuration() {
        let dir = std::env::temp_dir().join(format!("pe-cfg-ingest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "event_retention = \"30d\"\nmax_line_bytes = 300").unwrap();
        let mut db = DbArgs::default();
        let s = IngestSettings::load(&db, None, None).unwrap();
        assert_eq!(s.event_retention, Duration::from_secs(400 * 86_400));
        assert_eq!(s.max_line_bytes, 1024 * 1024);
        db.config = Some(path.clone());
        let s = IngestSettings::load(&db, None, None).unwrap();
        assert_eq!(s.event_retention, Duration::from_secs(30 * 86_400));
        assert_eq!(s.max_line_bytes, 300);
        let s = IngestSettings::load(&db, Some("2d".into()), Some(10)).unwrap();
        assert_eq!(
            (s.event_retention, s.max_line_bytes),
            (Duration::from_secs(172_800), 10)
        );
        assert!(IngestSettings::load(&db, None, Some(0)).is_err());
        assert!(IngestSettings::load(&db, Some("soon".into()), None).is_err());
        let cfg = ServeConfig::load(ServeArgs {
            db,
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(cfg.max_line_bytes, 300);
        assert_eq!(cfg.event_retention, Duration::from_secs(30 * 86_400));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn connection_limits_from_file_then_flags() {
        let dir = std::env::temp_dir().join(format!("pe-cfg-conn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "http_header_timeout = \"3s\"\nhttp_idle_timeout = \"5s\"\nmax_connections = 8",
        )
        .unwrap();
        let mut args = ServeArgs::default();
        args.db.config = Some(path);
        let cfg = ServeConfig::load(args.clone()).unwrap();
        assert_eq!(cfg.http_header_timeout, Duration::from_secs(3));
        assert_eq!(cfg.http_idle_timeout, Duration::from_secs(5));
        assert_eq!(cfg.max_connections, 8);
        args.http_idle_timeout = Some("250ms".into());
        args.max_connections = Some(2);
        let cfg = ServeConfig::load(args.clone()).unwrap();
        assert_eq!(cfg.http_idle_timeout, Duration::from_millis(250));
        assert_eq!(cfg.max_connections, 2);
        args.max_connections = Some(0);
        assert!(ServeConfig::load(args.clone()).is_err());
        args.max_connections = None;
        args.http_header_timeout = Some("0s".into());
        assert!(ServeConfig::load(args).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
