//! A store fed by one watch (namespaces, or one kind of octostage's objects), plus octostage's
//! own writes, as pure data: no I/O, so every ordering of events and writes is unit-tested.
//!
//! A watch delivers octostage's own writes a moment after the write returns. A pass that ran in
//! that moment would see the object as it was before and, say, create it again (refused: it
//! exists) or miss a namespace it just made. So every write is recorded as an *expectation*
//! (Kubernetes controllers call them that): until the watch delivers the very version the write
//! returned (its `resourceVersion`, compared for equality only, as the API allows), or a
//! re-list that started after the write completes, the store answers with what was written.
//!
//! The store answers nothing (the pass lists instead) until its first listing completed, after
//! any watch error until the next listing completes, and while an expectation is older than
//! [`EXPECT_LIMIT`] (the watch is then restarted: a bound, not a hope).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Longest a write may go unconfirmed by the watch before the store stops answering.
pub const EXPECT_LIMIT: Duration = Duration::from_secs(60);

/// One watch event, reduced to a key, the object's `resourceVersion` and what the store keeps
/// of it (`None`: the object is there but nothing octostage keeps).
#[derive(Debug, Clone)]
pub enum Event<K, V> {
    /// A (re)listing starts.
    Init,
    /// An object of the listing.
    InitApply(K, String, Option<V>),
    /// The listing is complete.
    InitDone,
    /// An object was added or changed.
    Apply(K, String, Option<V>),
    /// An object was deleted.
    Delete(K),
}

#[derive(Debug)]
struct Expect<V> {
    at: Instant,
    /// The version the write returned; `None` for a deletion.
    version: Option<String>,
    value: Option<V>,
}

/// An object as the watch last showed it, with the versions it showed most recently.
#[derive(Debug)]
struct Seen<V> {
    value: V,
    versions: Vec<String>,
}

/// Versions remembered per object: a write's answer and its watch event race (they come on
/// different connections), so a write may be recorded after the watch already showed it, or
/// even after a later change.
const RECENT_VERSIONS: usize = 4;

/// Which keys' view changed since the last [`Store::take_touched`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched<K: Eq + Hash> {
    /// Any of them (a listing replaced everything, or nobody asked yet).
    All,
    /// These.
    Keys(HashSet<K>),
}

/// What one watch knows.
#[derive(Debug)]
pub struct Store<K: Eq + Hash, V> {
    ready: bool,
    items: HashMap<K, Seen<V>>,
    building: Option<(Instant, HashMap<K, Seen<V>>)>,
    expect: HashMap<K, Expect<V>>,
    events: u64,
    failures: u64,
    /// So that a reader keeping a view of its own updates only what changed.
    touched: Touched<K>,
}

impl<K: Eq + Hash, V> Default for Store<K, V> {
    fn default() -> Self {
        Store {
            ready: false,
            items: HashMap::new(),
            building: None,
            expect: HashMap::new(),
            events: 0,
            failures: 0,
            touched: Touched::All,
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Store<K, V> {
    /// Take one watch event.
    pub fn event(&mut self, e: Event<K, V>, now: Instant) {
        self.events += 1;
        match e {
            Event::Init => self.building = Some((now, HashMap::new())),
            Event::InitApply(k, version, v) => {
                self.confirm(&k, Some(&version));
                if let (Some((_, b)), Some(value)) = (&mut self.building, v) {
                    let versions = vec![version];
                    b.insert(k, Seen { value, versions });
                }
            }
            Event::InitDone => {
                if let Some((started, items)) = self.building.take() {
                    self.items = items;
                    self.ready = true;
                    self.touched = Touched::All;
                    // A listing that started after a write completed shows that write or later.
                    self.expect.retain(|_, x| x.at > started);
                }
            }
            Event::Apply(k, version, v) => {
                self.touch(&k);
                self.confirm(&k, Some(&version));
                let Some(value) = v else {
                    self.items.remove(&k);
                    return;
                };
                let mut versions = self
                    .items
                    .remove(&k)
                    .map(|s| s.versions)
                    .unwrap_or_default();
                if versions.len() == RECENT_VERSIONS {
                    versions.remove(0);
                }
                versions.push(version);
                self.items.insert(k, Seen { value, versions });
            }
            Event::Delete(k) => {
                self.touch(&k);
                self.confirm(&k, None);
                self.items.remove(&k);
            }
        }
    }

    fn touch(&mut self, k: &K) {
        if let Touched::Keys(keys) = &mut self.touched {
            if !keys.contains(k) {
                keys.insert(k.clone());
            }
        }
    }

    /// The keys whose view changed since the last call (all of them the first time and after
    /// a listing), and from now on none.
    pub fn take_touched(&mut self) -> Touched<K> {
        std::mem::replace(&mut self.touched, Touched::Keys(HashSet::new()))
    }

    /// What [`Store::view`] holds for `k`.
    pub fn current(&self, k: &K) -> Option<&V> {
        match self.expect.get(k) {
            Some(x) => x.value.as_ref(),
            None => self.items.get(k).map(|s| &s.value),
        }
    }

    fn confirm(&mut self, k: &K, version: Option<&String>) {
        if self
            .expect
            .get(k)
            .is_some_and(|x| x.version.as_ref() == version)
        {
            self.expect.remove(k);
        }
    }

    /// Record octostage's own write: `version` and what to keep, or `None` for a deletion.
    pub fn wrote(&mut self, k: K, version: Option<String>, value: Option<V>, now: Instant) {
        let seen = self.items.get(&k);
        let already = match &version {
            Some(v) => seen.is_some_and(|s| s.versions.contains(v)),
            None => seen.is_none(),
        };
        self.touch(&k);
        if already {
            self.expect.remove(&k);
            return;
        }
        self.expect.insert(
            k,
            Expect {
                at: now,
                version,
                value,
            },
        );
    }

    /// The watch failed or stopped: nothing is answered until it has listed again.
    pub fn fail(&mut self) {
        self.failures += 1;
        self.ready = false;
        self.building = None;
        self.touched = Touched::All;
    }

    /// Whether the store can answer for the whole set at `now`: listed since the last failure,
    /// and no write unconfirmed for longer than [`EXPECT_LIMIT`].
    pub fn answers(&self, now: Instant) -> bool {
        self.ready && !self.stale(now)
    }

    /// Whether a write went unconfirmed longer than [`EXPECT_LIMIT`]: the watch must list again.
    pub fn stale(&self, now: Instant) -> bool {
        self.expect
            .values()
            .any(|x| now.duration_since(x.at) >= EXPECT_LIMIT)
    }

    /// Every object as octostage should see it now: the watched ones, with its own unconfirmed
    /// writes in their place.
    pub fn view(&self) -> impl Iterator<Item = (&K, &V)> {
        let watched = self
            .items
            .iter()
            .filter(|(k, _)| !self.expect.contains_key(*k))
            .map(|(k, s)| (k, &s.value));
        let written = self
            .expect
            .iter()
            .filter_map(|(k, x)| x.value.as_ref().map(|v| (k, v)));
        watched.chain(written)
    }

    /// Whether the watch is still making its first listing (nothing failed yet): worth waiting
    /// for rather than listing beside it.
    pub fn starting(&self) -> bool {
        !self.ready && self.failures == 0
    }

    /// Events taken so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// What the watch last showed of `k`.
    pub fn get(&self, k: &K) -> Option<&V> {
        self.items.get(k).map(|s| &s.value)
    }

    /// Objects held.
    pub fn len(&self) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event::*;

    fn view(s: &Store<&'static str, u32>) -> Vec<(&'static str, u32)> {
        let mut v: Vec<_> = s.view().map(|(k, v)| (*k, *v)).collect();
        v.sort();
        v
    }

    fn listed(items: &[(&'static str, &str, u32)], now: Instant) -> Store<&'static str, u32> {
        let mut s = Store::default();
        s.event(Init, now);
        for (k, rv, v) in items {
            s.event(InitApply(*k, rv.to_string(), Some(*v)), now);
        }
        s.event(InitDone, now);
        s
    }

    #[test]
    fn a_reader_is_told_the_keys_that_changed_and_everything_after_a_listing() {
        let t = Instant::now();
        let mut s = listed(&[("a", "1", 1), ("b", "2", 2)], t);
        assert_eq!(s.take_touched(), Touched::All, "the first reader takes all");
        assert_eq!(s.take_touched(), Touched::Keys(HashSet::new()));
        s.event(Apply("a", "3".into(), Some(3)), t);
        s.wrote("c", Some("4".into()), Some(4), t);
        s.event(Delete("b"), t);
        assert_eq!(
            s.take_touched(),
            Touched::Keys(HashSet::from(["a", "b", "c"]))
        );
        assert_eq!(
            (s.current(&"a"), s.current(&"b"), s.current(&"c")),
            (Some(&3), None, Some(&4))
        );
        s.fail();
        assert_eq!(
            s.take_touched(),
            Touched::All,
            "a failed watch may have missed anything"
        );
        s.event(Init, t);
        s.event(InitDone, t);
        assert_eq!(s.take_touched(), Touched::All);
    }

    #[test]
    fn answers_only_after_a_complete_listing_and_not_after_a_failure() {
        let t = Instant::now();
        let mut s: Store<&str, u32> = Store::default();
        assert!(!s.answers(t));
        s.event(Init, t);
        s.event(InitApply("a", "1".into(), Some(1)), t);
        assert!(!s.answers(t), "half a listing is not the cluster");
        s.event(InitDone, t);
        assert!(s.answers(t));
        assert_eq!(view(&s), [("a", 1)]);
        s.fail();
        assert!(!s.answers(t));
        s.event(Init, t);
        s.event(InitDone, t);
        assert!(s.answers(t));
        assert_eq!(view(&s), [], "a re-listing replaces everything");
    }

    #[test]
    fn a_write_is_seen_at_once_and_replaced_by_the_watch_only_at_its_version() {
        let t = Instant::now();
        let mut s = listed(&[("a", "1", 1)], t);
        s.wrote("a", Some("5".into()), Some(2), t);
        s.wrote("b", Some("6".into()), Some(3), t);
        assert_eq!(view(&s), [("a", 2), ("b", 3)]);
        // An older event of `a` arrives first: the write still stands.
        s.event(Apply("a", "4".into(), Some(9)), t);
        assert_eq!(view(&s), [("a", 2), ("b", 3)]);
        s.event(Apply("a", "5".into(), Some(2)), t);
        s.event(Apply("a", "7".into(), Some(4)), t);
        assert_eq!(
            view(&s),
            [("a", 4), ("b", 3)],
            "after its version, the watch rules"
        );
    }

    #[test]
    fn a_deletion_hides_the_object_until_the_watch_reports_it() {
        let t = Instant::now();
        let mut s = listed(&[("a", "1", 1)], t);
        s.wrote("a", None, None, t);
        assert_eq!(view(&s), []);
        s.event(Apply("a", "2".into(), Some(1)), t);
        assert_eq!(view(&s), [], "an update from before the delete");
        s.event(Delete("a"), t);
        s.event(Apply("a", "9".into(), Some(7)), t);
        assert_eq!(
            view(&s),
            [("a", 7)],
            "made again by someone after the delete"
        );
    }

    #[test]
    fn a_write_the_watch_showed_before_its_answer_arrived_is_not_awaited() {
        let t = Instant::now();
        let mut s = listed(&[("a", "1", 1)], t);
        // The watch is quicker than the write's answer, and someone changes `a` right after.
        s.event(Apply("a", "5".into(), Some(2)), t);
        s.event(Apply("a", "6".into(), Some(3)), t);
        s.wrote("a", Some("5".into()), Some(2), t);
        assert_eq!(view(&s), [("a", 3)], "the later change is seen");
        assert!(!s.stale(t + EXPECT_LIMIT));
        // A deletion the watch already reported.
        s.event(Delete("a"), t);
        s.wrote("a", None, None, t);
        assert_eq!(view(&s), []);
        assert!(!s.stale(t + EXPECT_LIMIT));
    }

    #[test]
    fn a_listing_confirms_only_writes_made_before_it_started() {
        let t = Instant::now();
        let later = t + Duration::from_secs(1);
        let mut s = listed(&[], t);
        s.event(Init, t);
        // Written while a listing that started earlier runs: the listing may not show it.
        s.wrote("a", Some("3".into()), Some(1), later);
        s.event(InitDone, later);
        assert_eq!(view(&s), [("a", 1)]);
        // A listing that started after the write stands for it.
        let after = later + Duration::from_secs(1);
        s.event(Init, after);
        s.event(InitDone, after);
        assert_eq!(view(&s), []);
    }

    #[test]
    fn a_write_the_watch_never_confirms_stops_the_answers() {
        let t = Instant::now();
        let mut s = listed(&[], t);
        s.wrote("a", Some("3".into()), Some(1), t);
        assert!(s.answers(t + EXPECT_LIMIT - Duration::from_secs(1)));
        assert!(!s.answers(t + EXPECT_LIMIT));
    }

    #[test]
    fn an_object_that_stops_being_octostages_leaves_the_view() {
        let t = Instant::now();
        let mut s = listed(&[("a", "1", 1)], t);
        s.event(Apply("a", "2".into(), None), t);
        assert_eq!(view(&s), []);
    }
}
