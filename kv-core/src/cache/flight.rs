//! In-process request coalescing: one fill per key, its waiters told the outcome.

use super::*;

#[derive(Debug, Clone)]
pub(super) enum Flight {
    Running,
    /// The fill ended: the entry it stored, if any.
    Done(Option<Arc<Entry>>),
}

pub(super) enum Joined<St: Store> {
    Served(Served),
    Lead(FlightGuard<St>, Option<String>),
    Alone,
}

/// The leader's hold on an in-process fill: waiters are told the outcome when it is
/// finished or dropped.
pub(super) struct FlightGuard<St> {
    pub(super) cache: Cache<St>,
    pub(super) key: String,
    pub(super) tx: watch::Sender<Flight>,
}

impl<St> FlightGuard<St> {
    pub(super) fn finish(&self, entry: Option<Arc<Entry>>) {
        let mut flights = self.cache.inner.flights.lock();
        if flights
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self.tx.subscribe()))
        {
            flights.remove(&self.key);
        }
        drop(flights);
        self.tx.send_replace(Flight::Done(entry));
    }
}

impl<St> Drop for FlightGuard<St> {
    fn drop(&mut self) {
        if matches!(*self.tx.borrow(), Flight::Running) {
            self.finish(None);
        }
    }
}

impl<St> fmt::Debug for FlightGuard<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlightGuard").finish_non_exhaustive()
    }
}
