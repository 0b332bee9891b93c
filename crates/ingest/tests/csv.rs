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
    let (_dir, s) = store().await;
    let mut errors = Vec::new();
    let summary = ingest::ingest(
        &s,
        Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
        format,
        &Options {
            batch_size: 2,
            ..Options::default()
        },
        |e| errors.push(e.clone()),
        |_| {},
    )
    .await
    .unwrap();
    (summary, errors)
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
