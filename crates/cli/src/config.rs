//! Configuration: defaults → optional TOML file (`--config`) → environment → flags, layered in
//! one place ([`layered`]) and validated at start-up so a bad setting fails fast with a clear
//! message. Every option is declared once, in [`ServeArgs`] (flag, environment variable
//! `PROSPECT_EVENTS_<FLAG>`, TOML key = field name); its default once, in
//! [`domain::defaults`], which also feeds the `--help` texts ([`document_defaults`]). The
//! database URL also reads `DATABASE_URL`.

use anyhow::{bail, Context, Result};
use clap::Args;
use domain::defaults;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DbArgs {
    /// Database URL: sqlite://PATH or postgres://…
    #[arg(long, env = "PROSPECT_EVENTS_DATABASE_URL")]
    pub database_url: Option<String>,
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long, env = "PROSPECT_EVENTS_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "PROSPECT_EVENTS_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

/// Every option of `serve`, declared once: its flag, its environment variable and its key in
/// the TOML file (the field name). Each configuration layer is a value of this type holding
/// only what that layer sets; defaults are [`ServeArgs::defaults`].
#[derive(Args, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub db: DbArgs,
    /// Address to listen on.
    #[arg(long, env = "PROSPECT_EVENTS_LISTEN")]
    pub listen: Option<String>,
    /// Requests per minute per API key (0 = off).
    #[arg(long, env = "PROSPECT_EVENTS_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Allow webhook deliveries to loopback/private/link-local addresses (tests, local dev).
    #[arg(long, env = "PROSPECT_EVENTS_ALLOW_PRIVATE_TARGETS")]
    pub allow_private_targets: bool,
    /// Retry delays after failed deliveries.
    #[arg(long, env = "PROSPECT_EVENTS_RETRY_SCHEDULE")]
    pub retry_schedule: Option<String>,
    /// Timeout of one delivery attempt.
    #[arg(long, env = "PROSPECT_EVENTS_DELIVERY_TIMEOUT")]
    pub delivery_timeout: Option<String>,
    /// How long a claimed notification is reserved for one worker; after a crash it is
    /// delivered again once this passes (must exceed the delivery timeout).
    #[arg(long, env = "PROSPECT_EVENTS_DELIVERY_LEASE")]
    pub delivery_lease: Option<String>,
    /// Delivery attempts in flight at once, all webhooks together.
    #[arg(long, env = "PROSPECT_EVENTS_DELIVERY_CONCURRENCY")]
    pub delivery_concurrency: Option<usize>,
    /// Delivery attempts in flight at once to one webhook (a slow receiver holds no more).
    #[arg(long, env = "PROSPECT_EVENTS_DELIVERY_PER_WEBHOOK")]
    pub delivery_per_webhook: Option<usize>,
    /// Disable a webhook after failing continuously this long.
    #[arg(long, env = "PROSPECT_EVENTS_DISABLE_AFTER")]
    pub disable_after: Option<String>,
    /// After a v2 rotate_secret, how long the replaced secret still signs webhook-signature.
    #[arg(long, env = "PROSPECT_EVENTS_SECRET_ROTATION_GRACE")]
    pub secret_rotation_grace: Option<String>,
    /// Days ahead an anniversary is announced.
    #[arg(long, env = "PROSPECT_EVENTS_ANNIVERSARY_LEAD_DAYS")]
    pub anniversary_lead_days: Option<u32>,
    /// Interval of the anniversary scanner.
    #[arg(long, env = "PROSPECT_EVENTS_SCAN_INTERVAL")]
    pub scan_interval: Option<String>,
    /// Keep events this long.
    #[arg(long, env = "PROSPECT_EVENTS_EVENT_RETENTION")]
    pub event_retention: Option<String>,
    /// Largest accepted request body in bytes.
    #[arg(long, env = "PROSPECT_EVENTS_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Longest snapshot line the admin ingestion endpoint accepts, in bytes.
    #[arg(long, env = "PROSPECT_EVENTS_MAX_LINE_BYTES")]
    pub max_line_bytes: Option<usize>,
    /// A request head must arrive within this time, else the connection is closed.
    #[arg(long, env = "PROSPECT_EVENTS_HTTP_HEADER_TIMEOUT")]
    pub http_header_timeout: Option<String>,
    /// Close a keep-alive connection idle this long.
    #[arg(long, env = "PROSPECT_EVENTS_HTTP_IDLE_TIMEOUT")]
    pub http_idle_timeout: Option<String>,
    /// Connections served at once; more wait in the listen backlog.
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

/// The optional TOML file holds the same options as the flags, named as [`ServeArgs`]' fields.
type FileConfig = ServeArgs;

impl ServeArgs {
    /// The lowest layer: every option that has a default, from [`domain::defaults`], in the
    /// form a flag or the TOML file would spell it.
    pub fn defaults() -> Self {
        let schedule: Vec<String> = defaults::RETRY_SCHEDULE
            .iter()
            .map(|d| duration_text(*d))
            .collect();
        Self {
            db: DbArgs {
                database_url: Some(defaults::DATABASE_URL.into()),
                config: None,
                log_format: Some(LogFormat::default()),
            },
            listen: Some(defaults::LISTEN.into()),
            rate_limit: Some(defaults::RATE_LIMIT_PER_MINUTE),
            retry_schedule: Some(schedule.join(",")),
            delivery_timeout: Some(duration_text(defaults::DELIVERY_TIMEOUT)),
            delivery_lease: Some(duration_text(defaults::DELIVERY_LEASE)),
            delivery_concurrency: Some(defaults::DELIVERY_CONCURRENCY),
            delivery_per_webhook: Some(defaults::DELIVERY_PER_WEBHOOK),
            disable_after: Some(duration_text(defaults::DISABLE_AFTER)),
            secret_rotation_grace: Some(duration_text(defaults::SECRET_ROTATION_GRACE)),
            anniversary_lead_days: Some(defaults::ANNIVERSARY_LEAD_DAYS),
            scan_interval: Some(duration_text(defaults::SCAN_INTERVAL)),
            event_retention: Some(duration_text(defaults::EVENT_RETENTION)),
            max_body_bytes: Some(defaults::MAX_BODY_BYTES),
            max_line_bytes: Some(defaults::MAX_LINE_BYTES),
            http_header_timeout: Some(duration_text(defaults::HTTP_HEADER_TIMEOUT)),
            http_idle_timeout: Some(duration_text(defaults::HTTP_IDLE_TIMEOUT)),
            max_connections: Some(defaults::MAX_CONNECTIONS),
            ..Self::default()
        }
    }

    /// The options this layer sets, by TOML key: unset options and switches left off are
    /// absent, so they never override a lower layer.
    fn set_options(&self) -> Result<toml::Table> {
        let mut table = toml::Table::try_from(self).context("layering the configuration")?;
        table.retain(|_, value| value.as_bool() != Some(false));
        Ok(table)
    }

    fn load_file(path: Option<&Path>) -> Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| {
                // The flattened database options hide serde's list of keys: name them here.
                let msg = e.to_string();
                match msg.contains("unknown field") {
                    true => anyhow::anyhow!("{}, expected one of {}", msg.trim_end(), file_keys()),
                    false => anyhow::anyhow!(msg),
                }
            })
            .with_context(|| format!("parsing config file {}", path.display()))
    }
}

/// The TOML file's keys, as the flags declare them: `` `database_url`, `log_format`, … ``.
fn file_keys() -> String {
    let cmd = ServeArgs::augment_args(clap::Command::new("serve"));
    let keys: Vec<String> = cmd
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .filter(|id| *id != "config")
        .map(|id| format!("`{id}`"))
        .collect();
    keys.join(", ")
}

/// The one place layers meet: defaults → the `--config` file → `DATABASE_URL` → flags and
/// their `PROSPECT_EVENTS_*` variables (clap reads those). A later layer's value replaces an
/// earlier one's; a switch (`--no-worker`, …) can only be turned on.
fn layered(flags: &ServeArgs) -> Result<ServeArgs> {
    let file = ServeArgs::load_file(flags.db.config.as_deref())?;
    let database_url_env = ServeArgs {
        db: DbArgs {
            database_url: std::env::var("DATABASE_URL").ok().filter(|s| !s.is_empty()),
            ..DbArgs::default()
        },
        ..ServeArgs::default()
    };
    let mut merged = toml::Table::new();
    for layer in [&ServeArgs::defaults(), &file, &database_url_env, flags] {
        merged.extend(layer.set_options()?);
    }
    let mut out: ServeArgs = merged.try_into().context("layering the configuration")?;
    out.db.config = flags.db.config.clone();
    Ok(out)
}

/// A layered option; [`ServeArgs::defaults`] gives every one that reaches here a value.
fn given<T>(value: Option<T>, flag: &str) -> Result<T> {
    value.with_context(|| format!("--{flag} has no value and no default"))
}

/// Appends each option's default (from [`ServeArgs::defaults`]) to its `--help` text, in
/// every subcommand that has the option, so the help never restates a default by hand.
pub fn document_defaults(cmd: clap::Command) -> clap::Command {
    // Serializing plain strings and numbers cannot fail.
    let table = ServeArgs::defaults().set_options().unwrap_or_default();
    document_defaults_in(cmd, &table)
}

fn document_defaults_in(cmd: clap::Command, table: &toml::Table) -> clap::Command {
    let cmd = cmd.mut_args(|arg| {
        let Some(value) = table.get(arg.get_id().as_str()) else {
            return arg;
        };
        if !arg.get_default_values().is_empty() {
            return arg; // clap shows it already
        }
        let shown = match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        arg.help(format!("{help} [default: {shown}]"))
    });
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    names.iter().fold(cmd, |cmd, name| {
        cmd.mut_subcommand(name, |sub| document_defaults_in(sub, table))
    })
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
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
        let merged = layered(&ServeArgs {
            db: args.clone(),
            ..ServeArgs::default()
        })?;
        Self::resolve(merged.db)
    }

    fn resolve(db: DbArgs) -> Result<Self> {
        let database_url = given(db.database_url, "database-url")?;
        if !(database_url.starts_with("sqlite://")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            bail!("--database-url must start with sqlite:// or postgres://");
        }
        Ok(Self {
            database_url,
            log_format: given(db.log_format, "log-format")?,
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
    pub delivery_concurrency: usize,
    pub delivery_per_webhook: usize,
    pub disable_after: Duration,
    pub secret_rotation_grace: Duration,
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

/// A layered duration option, parsed.
fn duration(flag: &str, value: Option<String>) -> Result<Duration> {
    let s = given(value, flag)?;
    parse_duration(&s).with_context(|| format!("--{flag}: invalid duration {s:?}"))
}

/// A layered count or byte limit, which must be positive.
fn positive(flag: &str, value: Option<usize>) -> Result<usize> {
    let n = given(value, flag)?;
    if n == 0 {
        bail!("--{flag} must be positive");
    }
    Ok(n)
}

fn retry_schedule(value: Option<String>) -> Result<Vec<Duration>> {
    let schedule = given(value, "retry-schedule")?;
    let delays = schedule
        .split(',')
        .map(|s| parse_duration(s.trim()))
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("--retry-schedule: invalid schedule {schedule:?}"))?;
    if delays.is_empty() || delays.iter().any(|d| d.is_zero()) {
        bail!("--retry-schedule needs at least one positive delay");
    }
    Ok(delays)
}

impl ServeConfig {
    pub fn load(args: ServeArgs) -> Result<Self> {
        Self::resolve(layered(&args)?)
    }

    fn resolve(a: ServeArgs) -> Result<Self> {
        let db = DbConfig::resolve(a.db)?;
        let listen = given(a.listen, "listen")?;
        listen.parse::<std::net::SocketAddr>().with_context(|| {
            format!("--listen: {listen:?} is not an address like 127.0.0.1:8080")
        })?;
        let max_body_bytes = positive("max-body-bytes", a.max_body_bytes)?;
        let max_line_bytes = positive("max-line-bytes", a.max_line_bytes)?;
        let max_connections = given(a.max_connections, "max-connections")?;
        if !(1..=u32::MAX as usize).contains(&max_connections) {
            bail!("--max-connections must be between 1 and {}", u32::MAX);
        }
        let retry_schedule = retry_schedule(a.retry_schedule)?;
        let cfg = Self {
            log_format: db.log_format,
            db,
            listen,
            rate_limit: given(a.rate_limit, "rate-limit")?,
            allow_private_targets: a.allow_private_targets,
            retry_schedule,
            delivery_timeout: duration("delivery-timeout", a.delivery_timeout)?,
            delivery_lease: duration("delivery-lease", a.delivery_lease)?,
            delivery_concurrency: positive("delivery-concurrency", a.delivery_concurrency)?,
            delivery_per_webhook: positive("delivery-per-webhook", a.delivery_per_webhook)?,
            disable_after: duration("disable-after", a.disable_after)?,
            secret_rotation_grace: duration("secret-rotation-grace", a.secret_rotation_grace)?,
            anniversary_lead_days: given(a.anniversary_lead_days, "anniversary-lead-days")?,
            scan_interval: duration("scan-interval", a.scan_interval)?,
            event_retention: duration("event-retention", a.event_retention)?,
            max_body_bytes,
            max_line_bytes,
            http_header_timeout: duration("http-header-timeout", a.http_header_timeout)?,
            http_idle_timeout: duration("http-idle-timeout", a.http_idle_timeout)?,
            max_connections,
            worker: !a.no_worker,
            scanner: !a.no_scanner,
            api: !a.no_api,
            webhook_ca_file: a.webhook_ca_file,
            tls: match (a.tls_cert, a.tls_key) {
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
        let merged = layered(&ServeArgs {
            db: db.clone(),
            event_retention,
            max_line_bytes,
            ..ServeArgs::default()
        })?;
        Ok(Self {
            event_retention: duration("event-retention", merged.event_retention)?,
            max_line_bytes: positive("max-line-bytes", merged.max_line_bytes)?,
        })
    }
}

/// Spells a duration the way [`parse_duration`] reads it, in the largest exact unit (days only
/// from two days on, so a day reads `24h`).
pub fn duration_text(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 || secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    match secs {
        s if s % 86_400 == 0 && s >= 2 * 86_400 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
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
        let bogus = std::env::temp_dir().join(format!("pe-cfg-bogus-{}.toml", std::process::id()));
        std::fs::write(&bogus, "bogus = 1").unwrap();
        let e = format!("{:#}", ServeArgs::load_file(Some(&bogus)).unwrap_err());
        assert!(
            e.contains(
                "unknown field `bogus`, expected one of `database_url`, `log_format`, `listen`"
            ),
            "{e}"
        );
        assert!(e.ends_with("`tls_cert`, `tls_key`"), "{e}");
        std::fs::remove_file(bogus).unwrap();
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

    /// The delivery knobs: defaults from `domain::defaults`, the file, then flags; zero refused.
    #[test]
    fn delivery_concurrency_from_file_then_flags() {
        let dir = std::env::temp_dir().join(format!("pe-cfg-delivery-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "delivery_concurrency = 100\ndelivery_per_webhook = 7",
        )
        .unwrap();
        let mut args = ServeArgs::default();
        let cfg = ServeConfig::load(args.clone()).unwrap();
        assert_eq!(
            (cfg.delivery_concurrency, cfg.delivery_per_webhook),
            (
                defaults::DELIVERY_CONCURRENCY,
                defaults::DELIVERY_PER_WEBHOOK
            )
        );
        args.db.config = Some(path);
        let cfg = ServeConfig::load(args.clone()).unwrap();
        assert_eq!(
            (cfg.delivery_concurrency, cfg.delivery_per_webhook),
            (100, 7)
        );
        args.delivery_per_webhook = Some(3);
        let cfg = ServeConfig::load(args.clone()).unwrap();
        assert_eq!(
            (cfg.delivery_concurrency, cfg.delivery_per_webhook),
            (100, 3)
        );
        args.delivery_concurrency = Some(0);
        let e = ServeConfig::load(args).unwrap_err();
        assert_eq!(e.to_string(), "--delivery-concurrency must be positive");
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

    /// README's flags table is the contract: every default it names is the one
    /// `domain::defaults` defines (the single place), compared by value.
    #[test]
    fn readme_flags_table_states_the_defaults() {
        let readme = include_str!("../../../README.md");
        let table = ServeArgs::defaults().set_options().unwrap();
        assert_eq!(
            table.len(),
            19,
            "an option with a default was added or lost"
        );
        for (key, value) in &table {
            let flag = format!("| `--{}` | `", key.replace('_', "-"));
            let row = readme
                .lines()
                .find(|l| l.starts_with(&flag))
                .unwrap_or_else(|| panic!("README has no row for --{key}"));
            let stated = row[flag.len()..].split('`').next().unwrap();
            let ours = match value {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let same = match (key.as_str(), parse_duration(stated)) {
                ("retry_schedule", _) => {
                    retry_schedule(Some(stated.into())).unwrap()
                        == retry_schedule(Some(ours.clone())).unwrap()
                }
                (_, Ok(d)) if ours.ends_with(|c: char| c.is_ascii_alphabetic()) => {
                    parse_duration(&ours).unwrap() == d
                }
                _ => stated == ours,
            };
            assert!(
                same,
                "--{key}: README says {stated:?}, defaults say {ours:?}"
            );
        }
    }

    #[test]
    fn help_shows_each_default_once_defined() {
        let cmd = clap::Command::new("t")
            .subcommand(ServeArgs::augment_args(clap::Command::new("serve")));
        let mut cmd = document_defaults(cmd);
        let serve = cmd.find_subcommand_mut("serve").unwrap();
        let help = serve.render_help().to_string();
        assert!(
            help.contains("Timeout of one delivery attempt [default: 15s]"),
            "{help}"
        );
        assert!(
            help.contains("[default: 5s,5m,30m,2h,5h,10h,10h]"),
            "{help}"
        );
        assert!(help.contains("[default: 400d]"), "{help}");
        assert!(
            help.contains("[default: sqlite://./data/prospect-events.db]"),
            "{help}"
        );
    }

    #[test]
    fn duration_text_reads_back() {
        for d in [
            Duration::from_millis(250),
            Duration::from_secs(15),
            Duration::from_secs(120),
            Duration::from_secs(86_400),
            Duration::from_secs(400 * 86_400),
        ] {
            assert_eq!(parse_duration(&duration_text(d)).unwrap(), d);
        }
        assert_eq!(duration_text(Duration::from_secs(86_400)), "24h");
    }
}
