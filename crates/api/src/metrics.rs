//! Prometheus metrics for what an operator pages on: request rate, errors and latency by route.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<HashMap<(String, String, u16), Series>>,
}

impl Metrics {
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut map = match self.requests.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let key = (route.to_string(), method.to_string(), status);
        let s = map.entry(key).or_default();
        s.count += 1;
        s.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let map = match self.requests.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let mut out = String::new();
        out.push_str(
            "# HELP http_requests_total Requests answered, by route, method and status.\n",
        );
        out.push_str("# TYPE http_requests_total counter\n");
        let mut keys: Vec<_> = map.keys().collect();
        keys.sort();
        for k in &keys {
            let s = &map[*k];
            let _ = writeln!(
                out,
                "http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}",
                k.0, k.1, k.2, s.count
            );
        }
        out.push_str(
            "# HELP http_request_duration_seconds Request latency, by route and method.\n",
        );
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        let mut merged: HashMap<(&str, &str), Series> = HashMap::new();
        for k in &keys {
            let s = &map[*k];
            let m = merged.entry((k.0.as_str(), k.1.as_str())).or_default();
            m.count += s.count;
            m.sum += s.sum;
            for i in 0..BUCKETS.len() {
                m.buckets[i] += s.buckets[i];
            }
        }
        let mut mk: Vec<_> = merged.keys().copied().collect();
        mk.sort();
        for k in mk {
            let s = &merged[&k];
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{route=\"{}\",method=\"{}\",le=\"{}\"}} {}",
                    k.0, k.1, b, s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{route=\"{}\",method=\"{}\",le=\"+Inf\"}} {}",
                k.0, k.1, s.count
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{route=\"{}\",method=\"{}\"}} {}",
                k.0, k.1, s.sum
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{route=\"{}\",method=\"{}\"}} {}",
                k.0, k.1, s.count
            );
        }
        out
    }
}
