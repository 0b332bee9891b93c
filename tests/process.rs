//! Real `prospect-events` child processes for tests: `keys create`, and a `serve` that is
//! killed (and reaped) when dropped, so a failing test leaves no process behind.

use crate::cli_binary;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A command for the binary, isolated from the caller's PROSPECT_EVENTS_* / DATABASE_URL
/// settings and working directory.
pub fn command(bin: &Path, dir: &Path) -> Command {
    let mut c = Command::new(bin);
    c.env_clear().current_dir(dir);
    c
}

/// `prospect-events keys create`; returns the printed key.
pub fn keys_create(dir: &Path, db: &str, tenant: &str, partner: &str, admin: bool) -> String {
    let bin = cli_binary().expect("binary");
    let mut c = command(&bin, dir);
    c.env("RUST_LOG", "warn").args([
        "keys",
        "create",
        "--tenant",
        tenant,
        "--partner",
        partner,
        "--database-url",
        db,
    ]);
    if admin {
        c.arg("--admin");
    }
    let o = c.stdin(Stdio::null()).output().expect("run keys create");
    assert!(o.status.success(), "keys create: {o:?}");
    let out = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "keys create prints only the key: {out:?}");
    lines[0].to_string()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A running `prospect-events serve`; killed (SIGKILL) when dropped, so a failing test leaves
/// no process behind.
pub struct Serve {
    child: Option<Child>,
    pub base: String,
    pub log: PathBuf,
}

/// Where and how [`Serve`] checks that the server answers.
struct Probe {
    base: String,
    client: reqwest::Client,
}

impl Serve {
    /// Starts `serve --database-url db --listen 127.0.0.1:port <extra>` and waits until
    /// `/healthcheck/http` answers. Its stderr goes to `dir/<log_name>`.
    pub async fn start(dir: &Path, db: &str, port: u16, extra: &[&str], log_name: &str) -> Serve {
        Self::start_logging(dir, db, port, extra, log_name, "info").await
    }

    /// [`Serve::start`] with an explicit `RUST_LOG`.
    pub async fn start_logging(
        dir: &Path,
        db: &str,
        port: u16,
        extra: &[&str],
        log_name: &str,
        rust_log: &str,
    ) -> Serve {
        let probe = Probe {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        Self::launch(dir, db, port, extra, log_name, rust_log, probe).await
    }

    /// [`Serve::start`] for a server given `--tls-cert`/`--tls-key` in `extra` with a
    /// certificate for `localhost`: waits with `client` (which must trust it) on
    /// `https://localhost:<port>`, the base of [`Serve::url`].
    pub async fn start_https(
        dir: &Path,
        db: &str,
        port: u16,
        extra: &[&str],
        log_name: &str,
        client: reqwest::Client,
    ) -> Serve {
        let probe = Probe {
            base: format!("https://localhost:{port}"),
            client,
        };
        Self::launch(dir, db, port, extra, log_name, "info", probe).await
    }

    async fn launch(
        dir: &Path,
        db: &str,
        port: u16,
        extra: &[&str],
        log_name: &str,
        rust_log: &str,
        probe: Probe,
    ) -> Serve {
        let bin = cli_binary().expect("binary");
        let listen = format!("127.0.0.1:{port}");
        let log = dir.join(log_name);
        let stderr = std::fs::File::create(&log).unwrap();
        let child = command(&bin, dir)
            .env("RUST_LOG", rust_log)
            // Test data carry fixed dates: keep their events whatever today is (a test of the
            // retention passes --event-retention, which beats this).
            .env("PROSPECT_EVENTS_EVENT_RETENTION", "100000d")
            .args(["serve", "--database-url", db, "--listen", &listen])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn prospect-events serve");
        let mut s = Serve {
            child: Some(child),
            base: probe.base,
            log,
        };
        let client = probe.client;
        // PostgreSQL replicas run migrations at start; allow for a slow first start.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = s.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("serve exited at start ({status}):\n{}", s.log_text());
            }
            if let Ok(r) = client.get(s.url("/healthcheck/http")).send().await {
                if r.status() == 200 {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "serve not ready within 60 s:\n{}",
                s.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        c.kill().unwrap();
        c.wait().unwrap()
    }

    /// Sends SIGTERM (the child keeps running until it exits on its own).
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -TERM {}", self.pid());
    }

    /// Waits for the child to exit on its own within `timeout` (panics otherwise).
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not exit within {timeout:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `POST {base}/v1/webhooks` registering `url` for `partner`; returns the webhook secret.
pub async fn register_webhook(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    partner: &str,
    url: &str,
) -> String {
    let resp = client
        .post(format!("{base}/v1/webhooks"))
        .header("api_key", key)
        .json(&serde_json::json!({"partner_id": partner, "webhook_url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    v["webhook_secret"].as_str().unwrap().to_string()
}
