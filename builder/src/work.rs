//! The one work queue: items handed out in list order to a fixed number of
//! scoped threads, each result put back at its item's place.
//!
//! Used where the number of workers is hermod's to choose (`--jobs` builds,
//! parallel downloads) rather than rayon's: a build's make gets its share of
//! the jobs, and a download's failure stops the queue while running ones finish.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Run `job` on every item, at most `workers` at once (at least one). Once a
/// result satisfies `stop`, no further item is started; the items never
/// started are `None`. Results are in the items' order.
pub fn run<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    job: impl Fn(&T) -> R + Sync,
    stop: impl Fn(&R) -> bool + Sync,
) -> Vec<Option<R>> {
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let result = job(item);
                if stop(&result) {
                    next.store(items.len(), Ordering::SeqCst);
                }
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            });
        }
    });
    results.into_iter().map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order_from_every_worker_count() {
        let items: Vec<u32> = (0..50).collect();
        for workers in [0, 1, 3, 100] {
            let out = run(&items, workers, |i| i * 2, |_| false);
            assert_eq!(out, items.iter().map(|i| Some(i * 2)).collect::<Vec<_>>());
        }
        assert!(run(&[] as &[u32], 4, |i| *i, |_| false).is_empty());
    }

    #[test]
    fn a_stopping_result_starts_nothing_more() {
        let items: Vec<u32> = (0..50).collect();
        let out = run(&items, 1, |i| *i, |r| *r == 3);
        assert_eq!(&out[..4], &[Some(0), Some(1), Some(2), Some(3)]);
        assert!(out[4..].iter().all(Option::is_none));
    }
}
