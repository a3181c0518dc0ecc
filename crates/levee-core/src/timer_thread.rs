//! The last resort of a real-time [`Sleep`](crate::Sleep) polled outside both a tokio runtime
//! and [`block_on`](crate::block_on) (under another executor): one thread, started on first
//! need, wakes such sleeps at their deadlines.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Waker};
use std::time::Instant;

#[derive(Default)]
struct Queue {
    waiting: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
}

struct TimerThread {
    queue: Mutex<Queue>,
    changed: Condvar,
}

/// `None` when the thread could not be started: sleeps then ask to be polled again at once.
static TIMER: OnceLock<Option<&'static TimerThread>> = OnceLock::new();

fn timer() -> Option<&'static TimerThread> {
    *TIMER.get_or_init(|| {
        let timer: &'static TimerThread = Box::leak(Box::new(TimerThread {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("levee-sleep".into())
            .spawn(move || timer.run())
            .ok()
            .map(|_| timer)
    })
}

impl TimerThread {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self) {
        let mut queue = self.lock();
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while let Some(entry) = queue.waiting.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            if !due.is_empty() {
                drop(queue);
                due.into_iter().for_each(Waker::wake);
                queue = self.lock();
                continue;
            }
            queue = match queue.waiting.first_key_value() {
                None => self.changed.wait(queue).unwrap_or_else(PoisonError::into_inner),
                Some((&(at, _), _)) => {
                    self.changed
                        .wait_timeout(queue, at - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

/// A sleep's place in the timer thread's queue; leaves it when dropped.
#[derive(Debug, Default)]
pub(crate) struct Registration {
    key: Option<(Instant, u64)>,
}

impl Registration {
    /// Makes sure the timer thread wakes `cx`'s waker at `deadline`.
    pub(crate) fn register(&mut self, deadline: Instant, cx: &mut Context<'_>) {
        let Some(timer) = timer() else {
            cx.waker().wake_by_ref(); // no thread: ask to be polled again
            return;
        };
        let mut queue = timer.lock();
        if let Some(waker) = self.key.and_then(|key| queue.waiting.get_mut(&key)) {
            if !waker.will_wake(cx.waker()) {
                waker.clone_from(cx.waker());
            }
            return;
        }
        let key = (deadline, queue.next_id);
        queue.next_id += 1;
        let first = queue.waiting.first_key_value().is_none_or(|(&k, _)| key < k);
        queue.waiting.insert(key, cx.waker().clone());
        self.key = Some(key);
        drop(queue);
        if first {
            timer.changed.notify_one();
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let (Some(key), Some(Some(timer))) = (self.key.take(), TIMER.get()) {
            timer.lock().waiting.remove(&key);
        }
    }
}
