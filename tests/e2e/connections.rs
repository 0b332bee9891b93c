//! Connection behaviour over raw TCP (reqwest hides what is tested here): keep-alive honesty
//! when an answer leaves the request body unread, the early 413 from a declared length, the
//! header-read and idle timeouts, and the connection cap — with other clients served throughout.

use api::ConnLimits;
use prospect_events_e2e::{test_config, TestApp};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP/1.1 answer as read off the wire.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn says_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Reads one answer (head, then a `Content-Length` body); `None` when the server closed the
/// connection (or reset it) before a complete answer.
async fn read_answer(s: &mut TcpStream) -> Option<Answer> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let answer = Answer { status, headers };
    let len: usize = answer
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Some(answer)
}

/// True once the server has closed `s` (EOF or reset), within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout(within, s.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

fn health_request() -> &'static [u8] {
    b"GET /healthcheck/http HTTP/1.1\r\nHost: t\r\n\r\n"
}

async fn spawn_with_limits(limits: ConnLimits) -> TestApp {
    TestApp::spawn_with(api::ApiConfig {
        connections: limits,
        ..test_config()
    })
    .await
}

#[tokio::test]
async fn an_answer_before_the_body_keeps_the_connection_usable_or_says_close() {
    let app = TestApp::spawn().await;
    let body = br#"{"event_types": ["prospect_changed_role"], "prospect_ids": []}"#;

    // 401 (no key) answered before the body is sent; the body follows a moment later, then a
    // second request on the same connection.
    for path in ["/v1/prospects/events", "/no/such/route"] {
        let mut s = connect(&app).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The server may already have closed: a failed write shows in what follows.
        let _ = s.write_all(body).await;
        let first = read_answer(&mut s)
            .await
            .expect("an answer to the first request");
        assert!(
            matches!(first.status, 401 | 404),
            "{path}: {}",
            first.status
        );
        if first.says_close() {
            continue;
        }
        let _ = s.write_all(health_request()).await;
        let second = read_answer(&mut s).await;
        assert_eq!(
            second.map(|a| a.status),
            Some(200),
            "{path}: the connection was closed after a {} without `Connection: close`",
            first.status
        );
    }

    // A large body nobody reads is not drained: the answer says `Connection: close`.
    let mut s = connect(&app).await;
    s.write_all(
        b"POST /v1/prospects/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
          Content-Length: 1000000\r\n\r\n",
    )
    .await
    .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), read_answer(&mut s))
        .await
        .expect("answered without the body")
        .expect("an answer");
    assert_eq!(first.status, 401);
    assert!(first.says_close(), "{:?}", first.headers);
    assert!(closed_within(&mut s, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_413_at_once() {
    let app = TestApp::spawn().await;
    for path in ["/v1/prospects/events", "/v1/admin/prospects/snapshots"] {
        let key = if path.contains("admin") {
            app.new_key("con_test", "ops", true).await
        } else {
            app.key.clone()
        };
        let mut s = connect(&app).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\napi_key: {key}\r\n\
             Content-Type: application/json\r\nContent-Length: 8589934592\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(3), read_answer(&mut s))
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer without the body"))
            .expect("an answer");
        assert_eq!(answer.status, 413, "{path}");
        assert!(answer.says_close(), "{path}: {:?}", answer.headers);
        assert!(started.elapsed() < Duration::from_secs(1), "{path}");
    }
}

#[tokio::test]
async fn half_a_header_is_cut_off_after_the_header_timeout() {
    let app = spawn_with_limits(ConnLimits {
        header_read_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(60),
        max_connections: 1024,
    })
    .await;
    // Says half a head, then nothing.
    let mut silent = connect(&app).await;
    silent
        .write_all(b"GET /healthcheck/http HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    // Trickles a byte every 100 ms: activity does not extend the deadline.
    let mut trickler = connect(&app).await;
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for b in b"GET /healthcheck/http HTTP/1.1\r\nX-Slow: ".iter().cycle() {
            if trickler.write_all(&[*b]).await.is_err() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if started.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        Duration::MAX
    });
    assert!(
        closed_within(&mut silent, Duration::from_secs(3)).await,
        "a connection with half a header stayed open"
    );
    let trickled = trickle.await.unwrap();
    assert!(
        trickled < Duration::from_secs(4),
        "a trickling connection stayed open ({trickled:?})"
    );
    // A fresh connection that says nothing is cut off too.
    let mut mute = connect(&app).await;
    assert!(closed_within(&mut mute, Duration::from_secs(3)).await);
    // And a normal request is still served.
    let resp = app
        .client
        .get(app.url("/healthcheck/http"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_with_limits(ConnLimits {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_millis(700),
        max_connections: 1024,
    })
    .await;
    let mut s = connect(&app).await;
    // Pauses shorter than the idle timeout keep the connection.
    for _ in 0..3 {
        s.write_all(health_request()).await.unwrap();
        let a = read_answer(&mut s)
            .await
            .expect("served on the same connection");
        assert_eq!(a.status, 200);
        assert!(!a.says_close());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let idle_from = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(3)).await,
        "an idle keep-alive connection stayed open"
    );
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_millis(300),
        "closed too early: {idle:?}"
    );
}

#[tokio::test]
async fn a_normal_client_is_served_while_50_connections_trickle() {
    let app = spawn_with_limits(ConnLimits {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        max_connections: 1024,
    })
    .await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tricklers = Vec::new();
    for _ in 0..50 {
        let mut s = connect(&app).await;
        let stop = stop_rx.clone();
        // A header line, one byte every 50 ms, until told to stop: returns whether the
        // connection was still open then.
        tricklers.push(tokio::spawn(async move {
            let head = b"POST /v1/prospects/events HTTP/1.1\r\nHost: t\r\n";
            for b in head.iter().chain(b"X-Slow: ".iter().cycle()) {
                if *stop.borrow() {
                    return true;
                }
                if s.write_all(&[*b]).await.is_err() {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            unreachable!("the header line never ends")
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..20 {
        let started = Instant::now();
        let resp = app
            .req(reqwest::Method::GET, "/v1/prospects/events/enrollments")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    stop_tx.send(true).unwrap();
    for t in tricklers {
        assert!(t.await.unwrap(), "a trickling connection was dropped early");
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let app = spawn_with_limits(ConnLimits {
        header_read_timeout: Duration::from_millis(1000),
        idle_timeout: Duration::from_secs(60),
        max_connections: 2,
    })
    .await;
    // TestApp::spawn made its key through the store; no connection is open. Two mute
    // connections take both slots until the header timeout cuts them off.
    let _a = connect(&app).await;
    let _b = connect(&app).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let resp = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(app.url("/healthcheck/http"))
        .send()
        .await
        .expect("served once a slot is free");
    assert_eq!(resp.status(), 200);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(600),
        "served at once although both slots were taken ({waited:?})"
    );
}
