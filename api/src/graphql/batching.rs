//! When batched loads are dispatched: once the whole resolver tree of a request is
//! blocked, never on a timer.
//!
//! async-graphql's `DataLoader` collects keys and hands a dispatch task to a spawner. With
//! `tokio::spawn` and a delay, the dispatch races the resolvers on another thread: on a
//! slow pass (a long page, a debug build) a batch leaves before every sibling has asked,
//! and a page of 100 costs more statements than a page of 10. Here the dispatch tasks of
//! one request are queued and only started when executing the request returns `Pending`
//! without having woken itself, which is the moment every resolver that can run has
//! registered its keys. The number of statements then depends on the query's shape alone.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The dispatch queue of one request.
#[derive(Clone, Default)]
pub struct Dispatcher {
    queue: Arc<Mutex<Vec<Task>>>,
}

impl Dispatcher {
    /// The spawner to give each of the request's `DataLoader`s.
    pub fn spawner(&self) -> impl Fn(Task) + Send + Sync + 'static {
        let queue = self.queue.clone();
        move |task| queue.lock().expect("dispatch queue").push(task)
    }

    /// Runs `execution` to completion, dispatching queued loads whenever it is blocked.
    pub async fn drive<F: Future>(self, execution: F) -> F::Output {
        let mut execution = Box::pin(execution);
        let mut driver = Driver::new(self.queue);
        std::future::poll_fn(move |cx| driver.poll(cx, |cx| execution.as_mut().poll(cx))).await
    }

    /// The responses of `stream` (a subscription), each resolved with loads dispatched
    /// whenever it is blocked, as [`Dispatcher::drive`] does for one.
    pub fn drive_stream<S: futures_util::Stream + Send + 'static>(
        self,
        stream: S,
    ) -> impl futures_util::Stream<Item = S::Item> + Send + 'static {
        let mut stream = Box::pin(stream);
        let mut driver = Driver::new(self.queue);
        futures_util::stream::poll_fn(move |cx| driver.poll(cx, |cx| stream.as_mut().poll_next(cx)))
    }
}

/// Polls a request's execution and starts its queued loads when it is blocked.
struct Driver {
    queue: Arc<Mutex<Vec<Task>>>,
    running: Vec<Task>,
    /// The waker the execution was last polled with, while queued tasks wait.
    blocked_since: Option<Arc<Flag>>,
}

/// A waker that remembers it was woken and passes the wake on.
struct Flag {
    woken: AtomicBool,
    outer: Waker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.outer.wake_by_ref();
    }
}

impl Driver {
    fn new(queue: Arc<Mutex<Vec<Task>>>) -> Self {
        Driver {
            queue,
            running: Vec::new(),
            blocked_since: None,
        }
    }

    /// One poll of the execution (`step`), then of the loads it is waiting for.
    fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        step: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        // The execution counts as blocked when nothing woke it during a whole round trip
        // through the scheduler: a resolver that merely yielded (tokio defers such wakes
        // until after the poll) would have set the flag by now.
        if let Some(flag) = self.blocked_since.take()
            && !flag.woken.load(Ordering::SeqCst)
        {
            let queued: Vec<Task> =
                std::mem::take(&mut *self.queue.lock().expect("dispatch queue"));
            self.running.extend(queued);
        }
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(false),
            outer: cx.waker().clone(),
        });
        let waker = Waker::from(flag.clone());
        if let Poll::Ready(out) = step(&mut Context::from_waker(&waker)) {
            return Poll::Ready(out);
        }
        // A finished load wakes the execution through the outer waker, which polls us again.
        self.running
            .retain_mut(|task| task.as_mut().poll(cx).is_pending());
        if !self.queue.lock().expect("dispatch queue").is_empty() {
            self.blocked_since = Some(flag);
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn tasks_start_only_when_the_execution_is_blocked() {
        let d = Dispatcher::default();
        let spawn = d.spawner();
        let started = Arc::new(AtomicUsize::new(0));
        let seen = started.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<usize>();
        let execution = async move {
            let s = started.clone();
            spawn(Box::pin(async move {
                tx.send(s.load(Ordering::SeqCst)).ok();
            }));
            // Still running: the queued task must not have started.
            tokio::task::yield_now().await;
            started.fetch_add(1, Ordering::SeqCst);
            rx.await.unwrap()
        };
        assert_eq!(
            d.drive(execution).await,
            1,
            "the task saw the whole pass before it ran"
        );
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }
}
