//! A future polled only after its own waker fired, for the session loop's rarely-ready waits:
//! the loop polls every branch on every wake-up (a fan-out wakes each member once per message),
//! and a cancellation wait takes two locks per poll even when nothing happened.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// Whether the inner future was woken, and the task to wake.
#[derive(Debug, Default)]
struct Flag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

pin_project_lite::pin_project! {
    /// `inner`, polled on the first poll and afterwards only when it has asked to be woken.
    #[derive(Debug)]
    pub(super) struct WhenWoken<F> {
        #[pin]
        inner: F,
        flag: Arc<Flag>,
        waker: Waker,
    }
}

impl<F: Future> WhenWoken<F> {
    pub(super) fn new(inner: F) -> Self {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(Arc::clone(&flag));
        Self { inner, flag, waker }
    }
}

impl<F: Future> Future for WhenWoken<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // Registered before the look, so a wake between the two is not missed.
        this.flag.task.register(cx.waker());
        if !this.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.inner.poll(&mut Context::from_waker(this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn wakes_its_task_when_the_inner_future_is_ready_and_not_before() {
        let token = tokio_util::sync::CancellationToken::new();
        let wait = WhenWoken::new(token.clone().cancelled_owned());
        tokio::pin!(wait);
        // Not ready, however often it is polled without a wake.
        for _ in 0..3 {
            let pending =
                std::future::poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx).is_pending())).await;
            assert!(pending);
        }
        let cancel = tokio::spawn({
            let token = token.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                token.cancel();
            }
        });
        // The cancellation wakes this task and the next poll sees it.
        wait.await;
        cancel.await.unwrap();
    }

    #[tokio::test]
    async fn ready_at_once_when_the_inner_future_is() {
        let token = tokio_util::sync::CancellationToken::new();
        token.cancel();
        WhenWoken::new(token.cancelled_owned()).await;
    }
}
