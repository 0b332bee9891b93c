//! Deterministic snapshot generator for the ingestion benchmark (bench/ingest.sh).
//!
//! Writes N prospects × K observations as NDJSON (or CSV): observation round 0 of every
//! prospect, then round 1, … (like successive crawls of a vendor feed), `observed_at` advancing
//! 30 days per round. Round 0 is each prospect's baseline; in later rounds a line carries a
//! change (new title, new company, or both) with a probability chosen so that `--change-pct`
//! percent of all lines carry one. Optionally writes `--enroll-pct` percent of the prospect ids
//! (every n-th prospect), one per line, for enrollment.
//!
//! Same arguments → byte-identical output (own SplitMix64, no platform or crate-version
//! dependence).
//!
//! `gen_snapshots --prospects 200000 --observations 5 --out snaps.ndjson --enroll-out ids.txt`

use anyhow::Result;
use clap::Parser;
use std::io::{BufWriter, Write};

#[derive(Parser)]
#[command(about = "Generate snapshot files for the ingestion benchmark")]
struct Args {
    /// Distinct prospects.
    #[arg(long, default_value_t = 200_000)]
    prospects: u64,
    /// Observations (lines) per prospect.
    #[arg(long, default_value_t = 5)]
    observations: u64,
    /// Percentage of all lines that carry a change (title and/or company).
    #[arg(long, default_value_t = 10.0)]
    change_pct: f64,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output file (default: standard output).
    #[arg(long)]
    out: Option<String>,
    /// csv or ndjson.
    #[arg(long, default_value = "ndjson")]
    format: String,
    /// Write this percentage of the prospect ids here, one per line.
    #[arg(long)]
    enroll_out: Option<String>,
    #[arg(long, default_value_t = 10.0)]
    enroll_pct: f64,
}

/// SplitMix64: tiny, fast, and stable forever.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

const TITLES: [&str; 16] = [
    "Software Engineer",
    "Senior Software Engineer",
    "Staff Engineer",
    "Engineering Manager",
    "Director of Engineering",
    "VP Engineering",
    "CTO",
    "Product Manager",
    "Senior Product Manager",
    "Head of Product",
    "Account Executive",
    "Sales Director",
    "VP Sales",
    "Chief Revenue Officer",
    "Data Scientist",
    "Head of Data",
];

struct Person {
    pid: String,
    company: u64,
    title: usize,
    start: (i32, u8, u8),
}

fn hex(rng: &mut Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes * 2);
    while s.len() < bytes * 2 {
        s.push_str(&format!("{:016x}", rng.next()));
    }
    s.truncate(bytes * 2);
    s
}

/// Days since 1970-01-01 → (y, m, d) (civil-from-days, Howard Hinnant).
fn civil(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

fn main() -> Result<()> {
    let a = Args::parse();
    let csv = match a.format.as_str() {
        "csv" => true,
        "ndjson" => false,
        other => anyhow::bail!("--format must be csv or ndjson, not {other}"),
    };
    let out: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(std::fs::File::create(p)?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = BufWriter::with_capacity(1 << 20, out);
    let mut rng = Rng(a.seed);
    // 2025-01-01 = day 20089.
    const BASE: i64 = 20_089;
    let mut people: Vec<Person> = (0..a.prospects)
        .map(|_| Person {
            pid: hex(&mut rng, 20),
            company: rng.below(50_000),
            title: rng.below(TITLES.len() as u64) as usize,
            start: civil(BASE - 200 - rng.below(7000) as i64),
        })
        .collect();

    if let Some(p) = &a.enroll_out {
        let every = (100.0 / a.enroll_pct.max(0.0001)).round().max(1.0) as usize;
        let mut f = BufWriter::new(std::fs::File::create(p)?);
        for person in people.iter().step_by(every) {
            writeln!(f, "{}", person.pid)?;
        }
        f.flush()?;
    }

    let k = a.observations.max(1);
    let p_change = if k > 1 {
        (a.change_pct / 100.0 * k as f64 / (k - 1) as f64).min(1.0)
    } else {
        0.0
    };
    if csv {
        writeln!(
            w,
            "prospect_id,observed_at,full_name,linkedin_url,company_id,company_name,job_title,job_start_date"
        )?;
    }
    for round in 0..k {
        let day = BASE + 30 * round as i64;
        let (y, m, d) = civil(day);
        for (i, person) in people.iter_mut().enumerate() {
            if round > 0 && rng.chance(p_change) {
                let r = rng.below(10);
                if !(5..8).contains(&r) {
                    person.title = (person.title + 1 + rng.below(TITLES.len() as u64 - 1) as usize)
                        % TITLES.len();
                }
                if r >= 5 {
                    person.company = (person.company + 1 + rng.below(49_999)) % 50_000;
                    person.start = civil(day - 1 - rng.below(25) as i64);
                }
            }
            let (sy, sm, sd) = person.start;
            let secs = i % 86_400;
            let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
            // The company id is a pure function of the company number.
            let cid = format!(
                "{:032x}",
                (person.company as u128 + 1) * 0x9e37_79b9_7f4a_7c15
            );
            if csv {
                writeln!(
                    w,
                    "{},{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z,Person {i},https://www.linkedin.com/in/p{i},{cid},Company {},{},{sy:04}-{sm:02}-{sd:02}",
                    person.pid, person.company, TITLES[person.title]
                )?;
            } else {
                writeln!(
                    w,
                    "{{\"prospect_id\":\"{}\",\"observed_at\":\"{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z\",\"full_name\":\"Person {i}\",\"linkedin_url\":\"https://www.linkedin.com/in/p{i}\",\"company_id\":\"{cid}\",\"company_name\":\"Company {}\",\"job_title\":\"{}\",\"job_start_date\":\"{sy:04}-{sm:02}-{sd:02}\"}}",
                    person.pid, person.company, TITLES[person.title]
                )?;
            }
        }
    }
    w.flush()?;
    Ok(())
}
