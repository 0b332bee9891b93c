//! Readers: line numbers of rejected lines, CRLF input, error order, counts.

use ingest::{Format, LineError, Options, Summary};
use prospect_events_ingest as ingest;
use store::DynStore;

const P1: &str = "20ae6cbf564ee683e66685e429844a5ff8ffc30f";

async fn store() -> (tempfile::TempDir, DynStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let s = store::open(&url).await.unwrap();
    (dir, s)
}

async fn ingest_text(text: &str, format: Format) -> (Summary, Vec<LineError>) {
    let opts = Options {
        batch_size: 2,
        ..Options::default()
    };
    ingest_with(text.as_bytes(), format, &opts).await
}

async fn ingest_with(body: &[u8], format: Format, opts: &Options) -> (Summary, Vec<LineError>) {
    let (_dir, s) = store().await;
    let mut errors = Vec::new();
    let summary = ingest::ingest(
        &s,
        Box::new(std::io::Cursor::new(body.to_vec())),
        format,
        opts,
        |e| errors.push(e.clone()),
        |_| {},
    )
    .await
    .unwrap();
    (summary, errors)
}

fn line(observed_at: &str, extra: &str) -> String {
    format!("{{\"prospect_id\":\"{P1}\",\"observed_at\":\"{observed_at}\"{extra}}}")
}

fn csv_body(eol: &str) -> String {
    [
        "prospect_id,observed_at,company_name,job_title".to_string(),
        format!("{P1},2024-01-01,Acme,Dev"),
        format!("{P1},bad-date,Acme,Dev"),
        format!("{P1},2024-02-01,\"Acme, Inc.\",\"Dev\""),
        "nope,2024-03-01,,".to_string(),
        format!("{P1},2024-04-01,Acme Inc.,CTO"),
    ]
    .join(eol)
        + eol
}

#[tokio::test]
async fn csv_lf_line_numbers_are_physical_lines() {
    let (s, errors) = ingest_text(&csv_body("\n"), Format::Csv).await;
    assert_eq!(
        errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        [3, 5],
        "{errors:?}"
    );
    assert_eq!((s.lines, s.accepted, s.rejected), (5, 3, 2));
    // Acme → "Acme, Inc." (company), → "Acme Inc." + CTO (company and role).
    assert_eq!((s.baselines, s.events_created), (1, 3));
}

/// CRLF files (Excel, Windows exports) parse to the same values as LF files.
#[tokio::test]
async fn csv_crlf_values_are_the_same_as_lf() {
    let (lf, _) = ingest_text(&csv_body("\n"), Format::Csv).await;
    let (crlf, _) = ingest_text(&csv_body("\r\n"), Format::Csv).await;
    assert_eq!(lf, crlf);
}

/// With CRLF line ends (Excel, Windows exports) rejected lines are reported with their physical
/// line numbers, as with LF (the csv crate alone lags one line behind on CRLF).
#[tokio::test]
async fn csv_crlf_line_numbers_are_physical_lines() {
    let (_, errors) = ingest_text(&csv_body("\r\n"), Format::Csv).await;
    assert_eq!(
        errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        [3, 5],
        "{errors:?}"
    );
}

#[tokio::test]
async fn ndjson_line_numbers_count_blank_lines_and_crlf() {
    let body = format!(
        "{{\"prospect_id\":\"{P1}\",\"observed_at\":\"2024-01-01\"}}\r\n\r\n{{}}\r\n   \r\n{{\"prospect_id\":\"{P1}\",\"observed_at\":\"2024-01-02\",\"job_title\":5}}\r\n{{\"prospect_id\":\"{P1}\",\"observed_at\":\"2024-01-03\",\"job_title\":\"Dev\"}}"
    );
    let (s, errors) = ingest_text(&body, Format::Ndjson).await;
    assert_eq!(
        errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        [3, 5],
        "{errors:?}"
    );
    assert!(errors[0].error.starts_with("prospect_id"), "{errors:?}");
    assert!(errors[1].error.starts_with("job_title"), "{errors:?}");
    // Blank lines are not counted; the last line has no newline and is still read.
    assert_eq!((s.lines, s.accepted, s.rejected, s.baselines), (4, 2, 2, 1));
}

/// Errors arrive in input order across many batches, and the counts add up.
#[tokio::test]
async fn errors_in_order_across_batches() {
    let mut body = String::new();
    let mut bad = Vec::new();
    for i in 1..=1000u64 {
        if i % 7 == 0 {
            body.push_str("{\"prospect_id\":\"x\"}\n");
            bad.push(i);
        } else {
            body.push_str(&format!(
                "{{\"prospect_id\":\"{:040x}\",\"observed_at\":\"2024-01-01\"}}\n",
                i
            ));
        }
    }
    let (s, errors) = ingest_text(&body, Format::Ndjson).await;
    assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), bad);
    assert_eq!(s.lines, 1000);
    assert_eq!(s.rejected, bad.len() as u64);
    assert_eq!(s.accepted + s.rejected, s.lines);
    assert_eq!(s.baselines, s.accepted);
}

#[tokio::test]
async fn csv_without_prospect_id_header_is_fatal() {
    let (_dir, s) = store().await;
    let r = ingest::ingest(
        &s,
        Box::new(std::io::Cursor::new(b"a,b\n1,2\n".to_vec())),
        Format::Csv,
        &Options::default(),
        |_| {},
        |_| {},
    )
    .await;
    assert!(matches!(r, Err(ingest::IngestError::Csv(_))), "{r:?}");
}

/// A UTF-8 byte order mark before the first NDJSON line is not part of the line (CSV already
/// skipped it); anywhere else it stays an error.
#[tokio::test]
async fn ndjson_accepts_a_byte_order_mark_before_the_first_line() {
    let body = format!(
        "\u{feff}{}\n{}\n\u{feff}{}\n",
        line("2024-01-01", ""),
        line("2024-01-02", ""),
        line("2024-01-03", "")
    );
    let (s, errors) = ingest_text(&body, Format::Ndjson).await;
    assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [3]);
    assert_eq!((s.lines, s.accepted, s.baselines), (3, 2, 1));
}

fn capped(max_line_bytes: usize) -> Options {
    Options {
        batch_size: 2,
        max_line_bytes,
        ..Options::default()
    }
}

/// A line over `max_line_bytes` is one line error (the lines around it are read as usual); a
/// line of exactly the limit is accepted.
#[tokio::test]
async fn ndjson_lines_over_the_limit_are_rejected() {
    let exact = line(
        "2024-01-04",
        &format!(",\"full_name\":\"{}\"", "e".repeat(50)),
    );
    let max = exact.len();
    let huge = line(
        "2024-01-02",
        &format!(",\"full_name\":\"{}\"", "x".repeat(100_000)),
    );
    let body = [line("2024-01-01", ""), huge, line("2024-01-03", ""), exact].join("\n");
    let (s, errors) = ingest_with(body.as_bytes(), Format::Ndjson, &capped(max)).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, 2);
    assert_eq!(
        errors[0].error,
        format!("line longer than {max} bytes (the limit, --max-line-bytes); skipped")
    );
    assert_eq!((s.lines, s.accepted, s.rejected), (4, 3, 1));
}

/// In CSV the record holding an over-long line is rejected, and the cut keeps the quoting
/// intact: a quote dropped with the rest of the line does not swallow the next records.
#[tokio::test]
async fn csv_records_over_the_limit_are_rejected_and_quoting_survives() {
    let body = format!(
        "prospect_id,observed_at,company_name,job_title\n\
         {P1},2024-01-01,Acme,Dev\n\
         {P1},2024-01-02,\"Acme\n{}\",Dev\n\
         {P1},2024-01-03,\"Acme \"\"Inc\"\"\",Dev\n\
         {P1},2024-01-04,{},Dev\n",
        "x".repeat(5000),
        "y".repeat(5000),
    );
    let (s, errors) = ingest_with(body.as_bytes(), Format::Csv, &capped(200)).await;
    assert_eq!(
        errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        [3, 6],
        "{errors:?}"
    );
    assert!(errors
        .iter()
        .all(|e| e.error.starts_with("line longer than 200 bytes")));
    assert_eq!((s.lines, s.accepted, s.rejected), (4, 2, 2));
    assert_eq!((s.baselines, s.events_created), (1, 1), "{s:?}");
}

fn at(now: time::OffsetDateTime) -> Options {
    Options {
        batch_size: 2,
        clock: ingest::Clock::fixed(now),
        ..Options::default()
    }
}

/// `observed_at` may be at most one hour ahead of the clock; a snapshot from further in the
/// future is a line error (it would otherwise hide every real snapshot until its date).
#[tokio::test]
async fn observed_at_from_the_future_is_rejected() {
    let now = time::macros::datetime!(2024-06-10 12:00 UTC);
    let body = [
        line("2024-06-10T13:00:00Z", ""),
        line("2024-06-10T13:00:00.000000001Z", ""),
        line("2099-01-01", ""),
        line("2024-06-10T14:30:00+02:00", ""),
    ]
    .join("\n");
    let (s, errors) = ingest_with(body.as_bytes(), Format::Ndjson, &at(now)).await;
    assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(
        errors[1].error,
        "observed_at: 2099-01-01T00:00:00Z is in the future (more than 60 minutes after \
         this machine's clock, 2024-06-10T12:00:00Z)"
    );
    assert_eq!((s.accepted, s.rejected), (2, 2));
}

/// Times outside 1900-01-01..=2200-12-31 are line errors (they used to wrap around the i64
/// nanoseconds of the stored `observed_at`: 1600 became 2184, 9999 became 1816).
#[tokio::test]
async fn times_outside_the_supported_range_are_rejected() {
    let now = time::macros::datetime!(2024-06-10 12:00 UTC);
    let body = [
        line("1600-01-01", ""),
        line("9999-12-31T23:59:59Z", ""),
        line("1899-12-31T23:59:59.999999999Z", ""),
        line("1900-01-01", ",\"job_start_date\":\"1899-12-31\""),
        line("1900-01-01", ",\"job_start_date\":\"2201-01-01\""),
        line("1900-01-01T00:00:00Z", ",\"job_start_date\":\"1900-01-01\""),
        line("1900-01-02", ",\"job_start_date\":\"2200-12-31\""),
    ]
    .join("\n");
    let (s, errors) = ingest_with(body.as_bytes(), Format::Ndjson, &at(now)).await;
    let got: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.error.as_str())).collect();
    let range = "is outside the supported range (1900-01-01 to 2200-12-31, UTC)";
    assert_eq!(
        got,
        [
            (
                1,
                format!("observed_at: 1600-01-01T00:00:00Z {range}").as_str()
            ),
            (
                2,
                format!("observed_at: 9999-12-31T23:59:59Z {range}").as_str()
            ),
            (
                3,
                format!("observed_at: 1899-12-31T23:59:59.999999999Z {range}").as_str()
            ),
            (4, format!("job_start_date: 1899-12-31 {range}").as_str()),
            (5, format!("job_start_date: 2201-01-01 {range}").as_str()),
        ]
    );
    assert_eq!((s.accepted, s.baselines), (2, 1));
}
