//! Several localities of one job inside one process: each locality runs on
//! threads of its own and finds its state through its own context, and they
//! talk over QUIC on 127.0.0.1 exactly as separate processes do. For tests
//! and debugging: a whole job in one debugger, no launcher.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use hpx_parcelport::LocalityId;

use crate::config::{Config, ExecutionMode};
use crate::{Error, Result};

/// A port free for UDP and TCP on 127.0.0.1 for the job's rendezvous.
fn free_port() -> Result<u16> {
    Ok(hpx_parcelport::free_port(IpAddr::V4(Ipv4Addr::LOCALHOST))?)
}

fn job_secret() -> Result<Vec<u8>> {
    let mut secret = vec![0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| Error::Config(format!("no random secret: {e}")))?;
    Ok(secret)
}

/// Runs `main` as an SPMD job of `n` localities in this process, each with
/// `threads` worker threads, and returns every locality's result in
/// locality order. Like [`crate::Runtime::run`], a failed main or a lost
/// locality makes every locality return an error.
///
/// ```
/// let ids = hpx_runtime::run_in_process(3, 1, || async {
///     Ok::<_, hpx_runtime::Error>(hpx_runtime::get_locality_id())
/// });
/// let ids: Vec<u32> = ids.into_iter().collect::<Result<_, _>>().unwrap();
/// assert_eq!(ids, vec![0, 1, 2]);
/// ```
pub fn run_in_process<T, E, F, Fut>(n: u32, threads: usize, main: F) -> Vec<Result<T>>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let n = n.max(1);
    let setup = free_port().and_then(|port| Ok((port, job_secret()?)));
    let (port, secret) = match setup {
        Ok(s) => s,
        Err(e) => return (0..n).map(|_| Err(e.clone())).collect(),
    };
    let localities: Vec<_> = (0..n)
        .map(|i| {
            let config = Config {
                locality: LocalityId(i),
                num_localities: n,
                agas: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)),
                host: IpAddr::V4(Ipv4Addr::LOCALHOST),
                secret: Some(secret.clone()),
                threads: Some(threads.max(1)),
                localities_on_host: Some(n as usize),
                ..Config::default()
            };
            let main = main.clone();
            std::thread::Builder::new()
                .name(format!("hpx-locality-{i}"))
                .spawn(move || {
                    let args = vec![format!("locality-{i}")];
                    crate::runtime::run_job(config, args, ExecutionMode::Spmd, main)?
                        .ok_or_else(|| Error::MainFailed("main did not run".into()))
                })
        })
        .collect();
    localities
        .into_iter()
        .map(|spawned| match spawned {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                Err(Error::MainFailed("the locality's thread panicked".into()))
            }),
            Err(e) => Err(Error::from(e)),
        })
        .collect()
}
