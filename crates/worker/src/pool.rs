//! [`Pool`]: warm workers of one kind, reused across requests, at most
//! `max` at once.

use std::sync::{Condvar, Mutex};

use crate::{Launcher, Limits, Worker, WorkerError};

/// Warm workers of one kind, reused across requests. `get` hands out an idle
/// live worker or starts one; at most `max` run at once (callers beyond that
/// wait). A worker that died or was killed is dropped, not returned.
pub struct Pool {
    launcher: Launcher,
    args: Vec<String>,
    limits: Limits,
    max: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<Worker>,
    busy: usize,
    started: u64,
}

impl Pool {
    pub fn new(launcher: Launcher, args: Vec<String>, limits: Limits, max: usize) -> Pool {
        Pool {
            launcher,
            args,
            limits,
            max: max.max(1),
            state: Mutex::new(PoolState { idle: Vec::new(), busy: 0, started: 0 }),
            freed: Condvar::new(),
        }
    }

    /// Workers started so far (a replaced worker counts again).
    pub fn started(&self) -> u64 {
        self.state.lock().map(|s| s.started).unwrap_or(0)
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn get(&self) -> Result<Pooled<'_>, WorkerError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            while let Some(mut w) = st.idle.pop() {
                if w.is_alive() {
                    st.busy += 1;
                    return Ok(Pooled { pool: self, worker: Some(w) });
                }
            }
            if st.busy < self.max {
                st.busy += 1;
                st.started += 1;
                drop(st);
                return match self.launcher.start(&self.args, &self.limits) {
                    Ok(w) => Ok(Pooled { pool: self, worker: Some(w) }),
                    Err(e) => {
                        self.release(None);
                        Err(e)
                    }
                };
            }
            st = self.freed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn release(&self, w: Option<Worker>) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.busy -= 1;
        if let Some(mut w) = w {
            if w.is_alive() {
                st.idle.push(w);
            }
        }
        self.freed.notify_one();
    }
}

/// A worker on loan from a [`Pool`]; it goes back when dropped (if alive).
pub struct Pooled<'a> {
    pool: &'a Pool,
    worker: Option<Worker>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Worker;
    fn deref(&self) -> &Worker {
        self.worker.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Worker {
        self.worker.as_mut().expect("present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        self.pool.release(self.worker.take());
    }
}
