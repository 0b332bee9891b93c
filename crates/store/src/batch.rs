//! [`SnapshotBatch`]: what [`crate::Store::ingest_snapshots`] applies.
//!
//! Ingestion has one producer thread (parsing) and one consumer that must be fast (the single
//! database writer). A batch therefore carries the work that needs no database, done where it
//! was built: each snapshot's content hash (computed while the parsed strings are still in the
//! producer's cache) and the grouping by prospect (the snapshots are moved into that order, so
//! the writer walks them sequentially). It can also send its snapshots back to the
//! producer when dropped, so that the thousands of small allocations it holds are freed by the
//! thread that made them (cheaper there, and off the writer's path).

use domain::snapshot::Snapshot;
use std::sync::mpsc::Sender;

/// Snapshots with their content hashes, in input order until [`Self::group`]ed by prospect.
#[derive(Debug, Default)]
pub struct SnapshotBatch {
    snapshots: Vec<Snapshot>,
    /// `snapshots[i].content_hash()`.
    hashes: Vec<i64>,
    /// Sorted by prospect id, each prospect's snapshots in input order.
    grouped: bool,
    /// Where the snapshots go when the batch is dropped (see the module doc).
    home: Option<Sender<Vec<Snapshot>>>,
}

impl SnapshotBatch {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            snapshots: Vec::with_capacity(n),
            hashes: Vec::with_capacity(n),
            grouped: true,
            home: None,
        }
    }

    /// Appends a snapshot (after all earlier ones in input order).
    pub fn push(&mut self, s: Snapshot) {
        self.hashes.push(s.content_hash());
        self.snapshots.push(s);
        self.grouped = false;
    }

    pub fn len(&self) -> usize {
        self.snapshots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty()
    }

    /// Fails (before a backend writes anything) when a snapshot holds a time outside the
    /// supported range ([`domain::instant`]); the parsers never produce one.
    pub fn check_storable(&self) -> Result<(), domain::instant::OutOfRange> {
        for s in &self.snapshots {
            domain::instant::check(s.observed_at)?;
            if let Some(d) = s.job_start_date {
                domain::instant::check_date(d)?;
            }
        }
        Ok(())
    }

    /// The snapshots: in input order, or grouped by prospect once [`Self::group`]ed (each
    /// prospect's still in input order, which is all detection depends on).
    pub fn snapshots(&self) -> &[Snapshot] {
        &self.snapshots
    }

    /// On drop, the snapshots are sent to `home` instead of being freed by the dropping thread
    /// (freed there if `home` is gone).
    pub fn send_home_on_drop(&mut self, home: Sender<Vec<Snapshot>>) {
        self.home = Some(home);
    }

    /// Sorts the snapshots by prospect id, each prospect's in input order (which is all
    /// detection depends on); a no-op when already grouped. Done by the producer so the
    /// consumer finds it done.
    pub fn group(&mut self) {
        if std::mem::replace(&mut self.grouped, true) {
            return;
        }
        let mut keys: Vec<([u8; 20], u32)> = self
            .snapshots
            .iter()
            .enumerate()
            .map(|(i, s)| (*s.prospect_id.as_bytes(), i as u32))
            .collect();
        keys.sort_unstable();
        if keys.iter().enumerate().all(|(k, &(_, i))| k == i as usize) {
            return;
        }
        // Moved by index (a sort would move each ~250-byte snapshot log n times).
        let mut old: Vec<Option<Snapshot>> = std::mem::take(&mut self.snapshots)
            .into_iter()
            .map(Some)
            .collect();
        self.snapshots = keys
            .iter()
            .map(|&(_, i)| old[i as usize].take().expect("each index once"))
            .collect();
        self.hashes = keys.iter().map(|&(_, i)| self.hashes[i as usize]).collect();
    }

    /// The snapshots grouped by prospect (see [`Self::group`]), each with its content hash.
    pub fn grouped(&mut self) -> impl Iterator<Item = (&Snapshot, i64)> + '_ {
        self.group();
        self.snapshots.iter().zip(self.hashes.iter().copied())
    }
}

impl SnapshotBatch {
    /// The batch, grouped, cut into pieces of at least `max` snapshots (the last may be
    /// smaller) that never separate one prospect's snapshots, so applying the pieces in order
    /// is applying the batch. Each piece sends its snapshots home as the batch would.
    pub fn split_grouped(mut self, max: usize) -> Vec<SnapshotBatch> {
        self.group();
        let max = max.max(1);
        if self.snapshots.len() <= max {
            return vec![self];
        }
        let home = self.home.take();
        let hashes = std::mem::take(&mut self.hashes);
        let mut all = std::mem::take(&mut self.snapshots)
            .into_iter()
            .zip(hashes)
            .peekable();
        let mut pieces = Vec::new();
        let mut piece = SnapshotBatch::with_capacity(max);
        while let Some((s, h)) = all.next() {
            let same_next = all
                .peek()
                .is_some_and(|(n, _)| n.prospect_id == s.prospect_id);
            piece.snapshots.push(s);
            piece.hashes.push(h);
            if piece.len() >= max && !same_next {
                piece.home = home.clone();
                pieces.push(std::mem::replace(
                    &mut piece,
                    SnapshotBatch::with_capacity(max),
                ));
            }
        }
        if !piece.is_empty() {
            piece.home = home;
            pieces.push(piece);
        }
        pieces
    }
}

impl FromIterator<Snapshot> for SnapshotBatch {
    fn from_iter<I: IntoIterator<Item = Snapshot>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut b = Self::with_capacity(iter.size_hint().0);
        for s in iter {
            b.push(s);
        }
        b.group();
        b
    }
}

impl From<Vec<Snapshot>> for SnapshotBatch {
    fn from(snapshots: Vec<Snapshot>) -> Self {
        snapshots.into_iter().collect()
    }
}

impl Drop for SnapshotBatch {
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            // A closed channel hands the snapshots back in the error; they are freed here then.
            let _ = home.send(std::mem::take(&mut self.snapshots));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ProspectId;
    use time::OffsetDateTime;

    fn snap(pid: u8, title: &str) -> Snapshot {
        Snapshot {
            prospect_id: ProspectId::parse(&format!("{pid:02x}").repeat(20)).unwrap(),
            observed_at: OffsetDateTime::UNIX_EPOCH,
            full_name: None,
            linkedin_url: None,
            company_id: None,
            company_name: None,
            job_title: Some(title.into()),
            job_start_date: None,
        }
    }

    #[test]
    fn groups_by_prospect_keeping_input_order_within_each() {
        let mut b = SnapshotBatch::from(vec![
            snap(2, "a"),
            snap(1, "b"),
            snap(2, "c"),
            snap(1, "d"),
            snap(3, "e"),
        ]);
        let seen: Vec<(String, i64)> = b
            .grouped()
            .map(|(s, h)| (s.job_title.clone().unwrap(), h))
            .collect();
        let titles: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(titles, ["b", "d", "a", "c", "e"]);
        for (title, hash) in &seen {
            assert_eq!(*hash, snap(0, title).content_hash());
        }
        // pushing after grouping regroups
        b.push(snap(0, "f"));
        let first = b.grouped().next().unwrap().0.job_title.clone();
        assert_eq!(first.as_deref(), Some("f"));
    }

    #[test]
    fn split_pieces_keep_each_prospect_whole_and_in_order() {
        let b = SnapshotBatch::from(vec![
            snap(2, "a"),
            snap(1, "b"),
            snap(2, "c"),
            snap(1, "d"),
            snap(3, "e"),
            snap(4, "f"),
        ]);
        let mut pieces = b.split_grouped(1);
        let titles: Vec<Vec<String>> = pieces
            .iter_mut()
            .map(|p| {
                p.grouped()
                    .map(|(s, _)| s.job_title.clone().unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(
            titles,
            [vec!["b", "d"], vec!["a", "c"], vec!["e"], vec!["f"]]
        );
        let b = SnapshotBatch::from(vec![snap(1, "a"), snap(2, "b"), snap(3, "c")]);
        let sizes: Vec<usize> = b.split_grouped(2).iter().map(|p| p.len()).collect();
        assert_eq!(sizes, [2, 1]);
        let b = SnapshotBatch::from(vec![snap(1, "a")]);
        assert_eq!(b.split_grouped(5).len(), 1);
    }

    #[test]
    fn dropped_batch_sends_its_snapshots_home() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut b = SnapshotBatch::from(vec![snap(1, "a"), snap(2, "b")]);
        b.send_home_on_drop(tx);
        std::thread::spawn(move || drop(b)).join().unwrap();
        assert_eq!(rx.recv().unwrap().len(), 2);
        // without a receiver the batch is simply freed
        let (tx, rx) = std::sync::mpsc::channel();
        drop(rx);
        let mut b = SnapshotBatch::from(vec![snap(1, "a")]);
        b.send_home_on_drop(tx);
        drop(b);
    }
}
