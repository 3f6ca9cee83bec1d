//! Shared harness: in-process brokers on port 0 and a minimal Kafka protocol client.

pub mod client;

use std::path::PathBuf;
use troupe::config::BrokerConfig;

/// A broker config for tests: port 0, data in `dir`, fast retention checks.
pub fn test_config(dir: PathBuf, overrides: &[(&str, &str)]) -> BrokerConfig {
    let mut pairs: Vec<(String, String)> = vec![
        ("listeners".into(), "PLAINTEXT://127.0.0.1:0".into()),
        ("log.dirs".into(), dir.display().to_string()),
        // In-process brokers run side by side: each on a port of its own.
        ("metrics.http.listener".into(), "127.0.0.1:0".into()),
    ];
    pairs.extend(
        overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let (config, _warnings) = BrokerConfig::load(None, &pairs).expect("test config is valid");
    config
}

/// Poll `f` until it returns `Some`, failing the test after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
