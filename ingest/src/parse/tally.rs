//! [`Tally`]: events and items skipped by a rule, counted per reason.
//!
//! A body can carry thousands of statuses (Meta batches up to 1,000 updates in one POST, and a
//! status is never read, only counted): one entry per reason, not per item, so counting them
//! allocates nothing per item. The reasons are the parsers' and routes' own static labels, so
//! the list stays as short as the set of labels.

/// Counts per `reason` label, in order of first appearance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally(Vec<(&'static str, usize)>);

impl Tally {
    /// Counts one `reason`.
    pub fn push(&mut self, reason: &'static str) {
        self.add(reason, 1);
    }

    /// Counts `n` of `reason`.
    pub fn add(&mut self, reason: &'static str, n: usize) {
        if n == 0 {
            return;
        }
        match self.0.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, count)) => *count += n,
            None => self.0.push((reason, n)),
        }
    }

    /// How many in all.
    pub fn len(&self) -> usize {
        self.0.iter().map(|(_, n)| n).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The count of `reason`.
    pub fn count(&self, reason: &str) -> usize {
        self.0
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// Each reason with its count, in order of first appearance.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, usize)> + '_ {
        self.0.iter().copied()
    }
}

impl Extend<&'static str> for Tally {
    fn extend<I: IntoIterator<Item = &'static str>>(&mut self, reasons: I) {
        for r in reasons {
            self.push(r);
        }
    }
}

impl Extend<(&'static str, usize)> for Tally {
    fn extend<I: IntoIterator<Item = (&'static str, usize)>>(&mut self, counts: I) {
        for (r, n) in counts {
            self.add(r, n);
        }
    }
}

/// A tally equals a list of reasons when it counts each as often as the list holds it.
impl<const N: usize> PartialEq<[&str; N]> for Tally {
    fn eq(&self, list: &[&str; N]) -> bool {
        self.len() == N
            && self
                .iter()
                .all(|(r, n)| list.iter().filter(|l| **l == r).count() == n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_reason_in_order_of_first_appearance() {
        let mut t = Tally::default();
        t.push("status");
        t.add("status", 999);
        t.add("event", 0);
        t.push("no_id");
        t.extend(["status"]);
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            [("status", 1001), ("no_id", 1)]
        );
        assert_eq!(t.len(), 1002);
        assert_eq!(t.count("status"), 1001);
        assert_eq!(t.count("event"), 0);
        let mut u = Tally::default();
        u.push("presence");
        assert_eq!(u, ["presence"]);
        assert_ne!(u, ["presence", "presence"]);
        assert_ne!(u, ["event"]);
        assert_eq!(Tally::default(), []);
    }
}
