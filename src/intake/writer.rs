//! The group-commit writer.
//!
//! Intake hands each report to one writer task over a bounded queue. While a
//! batch is in the store, new reports queue up; the writer then takes all of
//! them (up to `intake.max_batch`) as the next batch, so under load a single
//! store round trip carries many reports and the cost per report falls. Each
//! request waits for its own receipt: 202 is only sent after the store
//! acknowledged the batch.
//!
//! Every report carries a deadline. A report whose requester already gave up
//! (and answered 503) is dropped before it is sent, so it cannot land late.
//! On shutdown the HTTP server first lets in-flight requests finish, each
//! waiting for its own write; [`WriterTask::finish`] then closes the queue,
//! writes whatever a still-waiting requester queued, and ends the task. A
//! request cut off by the shutdown timeout was never acknowledged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::{AnyStore, Receipt, ReportWrite, Store, StoreError};
use crate::telemetry::{Metrics, store_failed};

#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum WriteError {
    #[error("the intake queue is full")]
    QueueFull,
    #[error("the store did not acknowledge in time")]
    TimedOut,
    #[error("the store is unavailable")]
    Unavailable,
}

struct Job {
    report: ReportWrite,
    deadline: Instant,
    reply: oneshot::Sender<Result<Receipt, WriteError>>,
}

#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
    timeout: Duration,
}

impl Writer {
    /// Starts the writer task; it ends after every `Writer` clone is dropped
    /// and the queue is written out.
    pub fn spawn(
        store: Arc<AnyStore>,
        metrics: Arc<Metrics>,
        queue_capacity: usize,
        max_batch: usize,
        timeout: Duration,
    ) -> (Writer, WriterTask) {
        let (tx, rx) = mpsc::channel(queue_capacity);
        let (stop, stopped) = oneshot::channel();
        let handle = tokio::spawn(run(store, metrics, rx, stopped, max_batch));
        let task = WriterTask {
            stop: Some(stop),
            handle,
        };
        (Writer { queue: tx, timeout }, task)
    }

    /// Queues the report and waits for the store's receipt, at most the
    /// configured write timeout.
    pub async fn write(&self, report: ReportWrite) -> Result<Receipt, WriteError> {
        let deadline = Instant::now() + self.timeout;
        let (reply, answer) = oneshot::channel();
        self.queue
            .try_send(Job {
                report,
                deadline,
                reply,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => WriteError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => WriteError::Unavailable,
            })?;
        match tokio::time::timeout_at(deadline.into(), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_dropped)) => Err(WriteError::Unavailable),
            Err(_elapsed) => Err(WriteError::TimedOut),
        }
    }
}

/// The running writer; dropping it also stops the writer after a flush.
pub struct WriterTask {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

impl WriterTask {
    /// Refuses new reports, writes the queued ones and waits for the task.
    pub async fn finish(mut self) {
        drop(self.stop.take());
        if let Err(e) = (&mut self.handle).await {
            tracing::error!(error = %e, "writer task failed");
        }
    }
}

async fn run(
    store: Arc<AnyStore>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Job>,
    mut stop: oneshot::Receiver<()>,
    max_batch: usize,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    let mut stopping = false;
    loop {
        let received = if stopping {
            rx.recv_many(&mut jobs, max_batch).await
        } else {
            tokio::select! {
                n = rx.recv_many(&mut jobs, max_batch) => n,
                _ = &mut stop => {
                    // Queued reports stay readable after close: drain them.
                    stopping = true;
                    rx.close();
                    continue;
                }
            }
        };
        if received == 0 {
            break;
        }
        let now = Instant::now();
        jobs.retain(|job| job.deadline > now && !job.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let batch: Vec<ReportWrite> = jobs.iter().map(|j| j.report.clone()).collect();
        metrics.write_batch_size.observe(batch.len() as f64);
        let started = Instant::now();
        let result = store.record(&batch).await;
        metrics
            .write_batch_seconds
            .observe(started.elapsed().as_secs_f64());
        let outcome = match result {
            Ok(receipts) => receipts,
            Err(err) => vec![Err(err); jobs.len()],
        };
        let mut failures = 0;
        for (job, receipt) in jobs.drain(..).zip(outcome) {
            let answer = receipt.map_err(|err| {
                failures += 1;
                if failures == 1 {
                    store_failed!(
                        metrics,
                        "record",
                        &err,
                        reports = batch.len(),
                        "group commit failed"
                    );
                }
                match err {
                    // Both may have been stored: the client is told to retry,
                    // and its retry counts once (dedup, idempotency key).
                    StoreError::Timeout | StoreError::Unreplicated { .. } => WriteError::TimedOut,
                    _ => WriteError::Unavailable,
                }
            });
            let _ = job.reply.send(answer);
        }
        jobs.clear();
    }
}
