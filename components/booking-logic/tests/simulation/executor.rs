//! A single-threaded executor that polls its tasks in an order drawn from
//! the seed. The fakes yield before every port call (`set_interleaving`),
//! so each poll moves one task by at most one call: the seed decides the
//! interleaving of clients and sweepers, and replays it exactly.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::rng::Rng;

type Task<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// Which task is being polled, so that observers of port calls can tell
/// one request's calls from another's (0 outside the executor).
pub fn current_task() -> usize {
    CURRENT.with(Cell::get)
}

pub struct Executor<'a> {
    /// Each with a number unique in this executor, from 1.
    tasks: Vec<(usize, Task<'a>)>,
    spawned: usize,
    rng: Rng,
}

impl<'a> Executor<'a> {
    pub fn new(rng: Rng) -> Executor<'a> {
        Executor {
            tasks: Vec::new(),
            spawned: 0,
            rng,
        }
    }

    pub fn spawn(&mut self, task: impl Future<Output = ()> + 'a) {
        self.spawned += 1;
        self.tasks.push((self.spawned, Box::pin(task)));
    }

    /// Runs every task to completion. Nothing here waits on real I/O, so
    /// every pending task can always be polled again and the waker is
    /// never needed; a run that exceeds `max_polls` is reported as stuck.
    pub fn run(mut self, max_polls: u64) -> Result<(), String> {
        let mut context = Context::from_waker(Waker::noop());
        let mut polls = 0;
        while !self.tasks.is_empty() {
            if polls == max_polls {
                return Err(format!(
                    "{} tasks still running after {max_polls} polls: livelock",
                    self.tasks.len()
                ));
            }
            polls += 1;
            let next = self.rng.index(self.tasks.len());
            let (number, task) = &mut self.tasks[next];
            CURRENT.with(|current| current.set(*number));
            let ready = task.as_mut().poll(&mut context).is_ready();
            CURRENT.with(|current| current.set(0));
            if ready {
                drop(self.tasks.swap_remove(next));
            }
        }
        Ok(())
    }
}

/// Lets the other tasks take turns (a client thinking, a sweeper's timer).
pub async fn yield_now() {
    struct YieldNow(bool);

    impl Future for YieldNow {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                Poll::Ready(())
            } else {
                self.0 = true;
                Poll::Pending
            }
        }
    }

    YieldNow(false).await
}
