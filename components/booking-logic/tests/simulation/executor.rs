//! A single-threaded executor that polls its tasks in an order drawn from
//! the seed. The fakes yield before every port call (`set_interleaving`),
//! so each poll moves one task by at most one call: the seed decides the
//! interleaving of clients and sweepers, and replays it exactly.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::rng::Rng;

type Task<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

pub struct Executor<'a> {
    tasks: Vec<Task<'a>>,
    rng: Rng,
}

impl<'a> Executor<'a> {
    pub fn new(rng: Rng) -> Executor<'a> {
        Executor {
            tasks: Vec::new(),
            rng,
        }
    }

    pub fn spawn(&mut self, task: impl Future<Output = ()> + 'a) {
        self.tasks.push(Box::pin(task));
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
            if self.tasks[next].as_mut().poll(&mut context).is_ready() {
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
