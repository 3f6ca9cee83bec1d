//! Kafka's connection quotas: `max.connections` (broker-wide) and
//! `max.connections.per.ip`.
//!
//! As in Kafka, the broker-wide limit stops the accept loop (new connections wait in
//! the listen backlog) until a connection closes, while a connection over its address's
//! limit is accepted and closed at once, so one client cannot take every slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Open connections, counted per address.
#[derive(Debug)]
pub struct ConnectionQuotas {
    /// Atomic because dynamic broker configs change them at run time.
    max: AtomicUsize,
    max_per_ip: AtomicUsize,
    /// Per address; the total is the sum. Locked briefly on accept and on close.
    open: Mutex<HashMap<IpAddr, usize>>,
    /// Woken when a connection closes, for an accept loop waiting at `max`.
    freed: Notify,
}

/// Why a connection was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// The address already has `max.connections.per.ip` connections open.
    #[error("{ip} already has {open} connections open (max.connections.per.ip={max})")]
    PerIp { ip: IpAddr, open: usize, max: usize },
}

/// One counted connection; dropping it frees its slot.
#[derive(Debug)]
pub struct ConnectionSlot {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
}

impl ConnectionQuotas {
    pub fn new(max: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionQuotas {
            max: AtomicUsize::new(max.max(1)),
            max_per_ip: AtomicUsize::new(max_per_ip),
            open: Mutex::new(HashMap::new()),
            freed: Notify::new(),
        })
    }

    /// New limits (a dynamic broker config change). As in Kafka, connections already
    /// open stay open; a raised `max` lets a waiting accept loop go on at once.
    pub fn set_limits(&self, max: usize, max_per_ip: usize) {
        self.max.store(max.max(1), Ordering::Relaxed);
        self.max_per_ip.store(max_per_ip, Ordering::Relaxed);
        self.freed.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // A panic while holding this lock leaves counts that are still consistent
        // (each change is one insert or remove), so a poisoned lock is usable.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().values().sum()
    }

    /// Returns once fewer than `max.connections` are open (the accept loop waits here).
    pub async fn wait_for_room(&self) {
        loop {
            let notified = self.freed.notified();
            if self.open() < self.max.load(Ordering::Relaxed) {
                return;
            }
            notified.await;
        }
    }

    /// Counts a new connection from `ip`, unless its address is at its limit.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, QuotaError> {
        let mut open = self.lock();
        let max_per_ip = self.max_per_ip.load(Ordering::Relaxed);
        let n = open.entry(ip).or_default();
        if *n >= max_per_ip {
            let open_now = *n;
            if open_now == 0 {
                open.remove(&ip);
            }
            return Err(QuotaError::PerIp {
                ip,
                open: open_now,
                max: max_per_ip,
            });
        }
        *n += 1;
        Ok(ConnectionSlot {
            quotas: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.quotas.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
        drop(open);
        self.quotas.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_limit_and_slots_free_on_drop() {
        let q = ConnectionQuotas::new(10, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = q.admit(a).unwrap();
        let _s2 = q.admit(a).unwrap();
        assert!(matches!(q.admit(a), Err(QuotaError::PerIp { open: 2, .. })));
        let _s3 = q.admit(b).unwrap();
        assert_eq!(q.open(), 3);
        drop(s1);
        assert_eq!(q.open(), 2);
        let _s4 = q.admit(a).unwrap();
    }

    #[tokio::test]
    async fn accept_waits_at_the_broker_wide_limit() {
        let q = ConnectionQuotas::new(1, 10);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let slot = q.admit(ip).unwrap();
        let waiting = tokio::spawn({
            let q = q.clone();
            async move { q.wait_for_room().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(slot);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken when a slot frees")
            .unwrap();
    }

    #[test]
    fn limits_change_at_run_time() {
        let q = ConnectionQuotas::new(10, 1);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let _a = q.admit(ip).unwrap();
        assert!(q.admit(ip).is_err());
        q.set_limits(10, 2);
        let _b = q.admit(ip).unwrap();
        assert!(q.admit(ip).is_err());
    }
}
