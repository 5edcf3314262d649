//! Runtime configuration, read in one documented place.
//!
//! Sources, strongest first:
//!
//! 1. command-line flags `--hpx:NAME=VALUE` (removed from [`crate::args`]);
//! 2. `HPX_*` environment variables, as set by `hpxrun`;
//! 3. Slurm's variables, so `srun -n 4 prog` needs no launcher;
//! 4. defaults: one locality, no network.
//!
//! | flag | variable | meaning | default |
//! |---|---|---|---|
//! | `--hpx:threads=N` | `HPX_THREADS` | worker threads of this locality | cores ÷ localities on this host (`HPX_LOCALITIES_ON_HOST`, set by hpxrun), at least 1 |
//! | `--hpx:locality=I` | `HPX_LOCALITY` (`SLURM_PROCID`) | this locality's id | 0 |
//! | `--hpx:localities=N` | `HPX_NUM_LOCALITIES` (`SLURM_NTASKS`) | localities in the job | 1 |
//! | `--hpx:agas=HOST:PORT` | `HPX_AGAS` (first host of `SLURM_STEP_NODELIST`, port `HPX_PORT` or one derived from `SLURM_JOB_ID`, see [`slurm_port`]) | the root's rendezvous | required if N > 1 |
//! | `--hpx:host=ADDR` | `HPX_HOST` (`SLURMD_NODENAME`) | address this locality binds | 127.0.0.1 |
//! | `--hpx:startup-timeout=S` | `HPX_STARTUP_TIMEOUT` | seconds for all localities to arrive | 30 |
//! | `--hpx:peer-timeout=S` | `HPX_PEER_TIMEOUT` | seconds of silence before a locality is lost | 5 |
//! | `--hpx:spin-us=US` | `HPX_SPIN_US` | microseconds a worker stays awake after a message (0: never) | 500 (yielding the core while the host's workers exceed its cores; 0 beyond twice the cores) |
//! | `--hpx:network-thread=on\|off` | `HPX_NETWORK_THREAD` | run the transport on a thread of its own (see below) | on when this host has a core beyond the workers of its localities |
//! | `--hpx:parcelport=LIST` | `HPX_PARCELPORT` | the parcelports to use, comma-separated: `shm` (shared memory between the localities of one host) and one of `quic` or `tcp` (between hosts; `quic` if neither is named) | `shm,quic` |
//! | `--hpx:print-parcelports` | `HPX_PRINT_PARCELPORTS=1` | print which parcelport reaches each locality | off |
//! | `--hpx:print-counters` | `HPX_PRINT_COUNTERS=1` | print this locality's counters when it ends (see [`mod@crate::counters`]) | off |
//! | `--hpx:counters=FILE` | `HPX_COUNTERS` | write this locality's counters to `FILE` as JSON when it ends (`%l` in `FILE` is the locality's id; `hpxrun --counters` sets it) | none |
//! | `--hpx:trace=FILE` | `HPX_TRACE` | record a timeline and write it to `FILE` (Chrome trace-event JSON, see [`crate::trace`]) when the locality ends (`%l` in `FILE` is the locality's id; `hpxrun --trace` sets it) | off |
//! | | `HPX_SHM` | the shared-memory directory, or `off` (no shared memory) | `/dev/shm` if it exists |
//! | | `HPX_SECRET` | 64 hex digits shared by the job (hpxrun makes one and sends it over `HPX_CONTROL_FD`) | required if N > 1 |
//! | | `HPX_CONTROL_FD` | the launcher's channel (set by hpxrun; see the `supervisor` module) | none |
//!
//! The network thread keeps parcels and replies flowing while
//! every worker computes; without it the transport runs on the workers,
//! which saves two hand-overs between threads per message (BENCHMARKS.md:
//! an 8-byte round trip on two cores took 19 µs on the workers and 92 µs
//! with a network thread, which then has no core of its own).
//!
//! `HPX_SECRET` has no flag on purpose: command lines are visible to every
//! user of a machine. For `srun`, export it first:
//! `export HPX_SECRET=$(openssl rand -hex 32); srun -n 4 prog`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use hpx_parcelport::LocalityId;

use crate::{Error, Result};

/// Rendezvous port under Slurm when `HPX_PORT` is not set and Slurm gives
/// no job id.
pub const DEFAULT_SLURM_PORT: u16 = 7910;

/// The rendezvous port of a Slurm job step when `HPX_PORT` is not set: one
/// of 20,000 ports below the usual ephemeral range (10000..30000), chosen by
/// the job and step ids, so that two jobs sharing a first node rarely meet.
pub fn slurm_port(job_id: Option<&str>, step_id: Option<&str>) -> u16 {
    let Some(job) = job_id.and_then(|j| j.trim().parse::<u64>().ok()) else {
        return DEFAULT_SLURM_PORT;
    };
    let step = step_id
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let mixed = crate::hash::fnv1a_parts(&[&job.to_le_bytes(), &step.to_le_bytes()]);
    10_000 + (mixed % 20_000) as u16
}

/// Where main runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExecutionMode {
    /// Main runs on every locality (like MPI); the job ends when all mains
    /// have returned and in-flight work is drained.
    #[default]
    Spmd,
    /// Main runs on locality 0; the others serve actions until it returns.
    RootOnly,
}

/// The parcelport between localities of different hosts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Network {
    /// QUIC (quinn): TLS 1.3, many streams, no head-of-line blocking.
    #[default]
    Quic,
    /// TLS 1.3 over TCP (rustls).
    Tcp,
}

/// Parses a `--hpx:parcelport` list: whether shared memory is on, and the
/// network parcelport.
fn parse_parcelports(what: &str, value: &str) -> Result<(bool, Network)> {
    let mut shm = false;
    let mut network = None;
    for name in value.split(',').map(str::trim) {
        let this = match name {
            "shm" => {
                shm = true;
                continue;
            }
            "quic" => Network::Quic,
            "tcp" => Network::Tcp,
            other => {
                return Err(bad(
                    what,
                    value,
                    format!("unknown parcelport {other:?} (known: shm, quic, tcp)"),
                ))
            }
        };
        if network.is_some_and(|n| n != this) {
            return Err(bad(what, value, "name one of quic and tcp, not both"));
        }
        network = Some(this);
    }
    Ok((shm, network.unwrap_or_default()))
}

/// Everything a locality needs to join its job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This locality's id.
    pub locality: LocalityId,
    /// Number of localities in the job.
    pub num_localities: u32,
    /// The root's rendezvous address (needed when there is more than one locality).
    pub agas: Option<SocketAddr>,
    /// The address this locality binds and advertises.
    pub host: IpAddr,
    /// The job secret.
    pub secret: Option<Vec<u8>>,
    /// Worker threads (None: this locality's share of the cores).
    pub threads: Option<usize>,
    /// Localities of the job on this host, this one included (None: unknown).
    pub localities_on_host: Option<usize>,
    /// How long the bootstrap may take.
    pub startup_timeout: Duration,
    /// Silence after which a peer is declared lost.
    pub peer_timeout: Duration,
    /// How long a worker keeps polling for messages after one (None: the default).
    pub spin: Option<Duration>,
    /// The shared-memory directory (None: no shared memory).
    pub shared_dir: Option<std::path::PathBuf>,
    /// Whether localities of one host talk through shared memory.
    pub shm: bool,
    /// The parcelport between hosts.
    pub network: Network,
    /// Print which parcelport reaches each locality once the job starts.
    pub print_parcelports: bool,
    /// Print this locality's counters when it ends.
    pub print_counters: bool,
    /// Write this locality's counters (JSON) to this file when it ends.
    pub counters_file: Option<std::path::PathBuf>,
    /// Record a timeline and write it to this file when the locality ends.
    pub trace_file: Option<std::path::PathBuf>,
    /// Whether the transport runs on a thread of its own (None: when the
    /// host has a core for it, see [`Config::network_thread`]).
    pub network_thread: Option<bool>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            locality: LocalityId(0),
            num_localities: 1,
            agas: None,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            secret: None,
            threads: None,
            localities_on_host: None,
            startup_timeout: Duration::from_secs(30),
            peer_timeout: Duration::from_secs(5),
            spin: None,
            shared_dir: Some(std::path::PathBuf::from("/dev/shm")).filter(|d| d.is_dir()),
            shm: true,
            network: Network::Quic,
            print_parcelports: false,
            print_counters: false,
            counters_file: None,
            trace_file: None,
            network_thread: None,
        }
    }
}

fn bad(what: &str, value: &str, why: impl std::fmt::Display) -> Error {
    Error::Config(format!("{what}={value:?}: {why}"))
}

/// A switch: `on`, `1`, `true` or `off`, `0`, `false`.
fn parse_switch(what: &str, value: &str) -> Result<bool> {
    match value.trim() {
        "on" | "1" | "true" => Ok(true),
        "off" | "0" | "false" => Ok(false),
        _ => Err(bad(what, value, "must be on or off")),
    }
}

/// A file this locality writes when it ends, `%l` replaced by its id.
fn output_file(what: &str, value: &str, locality: LocalityId) -> Result<std::path::PathBuf> {
    if value.trim().is_empty() {
        return Err(bad(what, value, "no file named"));
    }
    Ok(value.replace("%l", &locality.0.to_string()).into())
}

fn parse_num<T: std::str::FromStr>(what: &str, value: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value.trim().parse::<T>().map_err(|e| bad(what, value, e))
}

fn parse_secs(what: &str, value: &str) -> Result<Duration> {
    let secs: f64 = parse_num(what, value)?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(bad(what, value, "must be a positive number of seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| bad(what, value, e))
}

fn resolve(what: &str, value: &str, port: u16) -> Result<SocketAddr> {
    value
        .to_socket_addrs()
        .or_else(|_| (value, port).to_socket_addrs())
        .map_err(|e| bad(what, value, e))?
        .next()
        .ok_or_else(|| bad(what, value, "resolves to no address"))
}

fn parse_host(what: &str, value: &str) -> Result<IpAddr> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(ip);
    }
    resolve(what, value, 0).map(|a| a.ip())
}

/// The bytes of a job secret given as hex digits (`HPX_SECRET`'s form).
pub fn parse_secret(hex: &str) -> Result<Vec<u8>> {
    parse_hex("HPX_SECRET", hex)
}

/// Decodes hex digits into bytes.
fn parse_hex(what: &str, value: &str) -> Result<Vec<u8>> {
    let value = value.trim();
    if value.len() < 32 || value.len() % 2 != 0 {
        return Err(bad(
            what,
            "<hidden>",
            "must be at least 32 hex digits, an even number",
        ));
    }
    (0..value.len())
        .step_by(2)
        .map(|i| {
            value
                .get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| bad(what, "<hidden>", "not hex"))
        })
        .collect()
}

/// The first host of a Slurm node list such as `node[03-05,9],gpu1`.
pub fn first_slurm_host(list: &str) -> Option<String> {
    let list = list.trim();
    let end = list.find(',').unwrap_or(list.len());
    let bracket = list.find('[');
    match bracket {
        Some(b) if b < end => {
            let close = list[b..].find(']')? + b;
            let prefix = &list[..b];
            let first = list[b + 1..close].split(',').next()?;
            let first = first.split('-').next()?;
            if first.is_empty() {
                return None;
            }
            Some(format!("{prefix}{first}"))
        }
        _ => {
            let host = &list[..end];
            (!host.is_empty()).then(|| host.to_owned())
        }
    }
}

impl Config {
    /// Worker threads to start: the configured number, else this locality's
    /// share of the host's cores.
    pub fn worker_threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores / self.localities_on_host.unwrap_or(1)).max(1)
        })
    }

    /// Whether this locality runs its transport on a thread of its own: as
    /// configured, else when the host has a core beyond the worker threads
    /// of all its localities (a network thread without a core of its own
    /// costs more in hand-overs than it saves). Never for one locality.
    pub fn network_thread(&self) -> bool {
        if self.num_localities <= 1 {
            return false;
        }
        self.network_thread.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let per_host = self.localities_on_host.unwrap_or(1);
            per_host * (self.worker_threads() + 1) <= cores
        })
    }

    /// Reads the configuration of this process from its environment and
    /// command line, returning it with the arguments left for the program.
    pub fn from_env() -> Result<(Config, Vec<String>)> {
        // Arguments that are not UTF-8 are kept, lossily: they are the
        // program's, and `--hpx:` flags are ASCII.
        let args: Vec<String> = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        // Under hpxrun the secret comes over the launcher's channel.
        let secret = crate::supervisor::secret_from_launcher()?;
        Config::parse(
            |k| match (k, &secret) {
                ("HPX_SECRET", Some(secret)) => Some(secret.clone()),
                _ => std::env::var(k).ok(),
            },
            &args,
        )
    }

    /// Reads the configuration from `env` and `args` (`args[0]` is the
    /// program). Returns it and the arguments without `--hpx:` flags.
    pub fn parse(
        env: impl Fn(&str) -> Option<String>,
        args: &[String],
    ) -> Result<(Config, Vec<String>)> {
        let mut cfg = Config::default();
        let mut flags: Vec<(String, String)> = Vec::new();
        let mut rest = Vec::with_capacity(args.len());
        for arg in args {
            match arg.strip_prefix("--hpx:") {
                Some(flag) => {
                    let (name, value) = match flag.split_once('=') {
                        Some(pair) => pair,
                        // Flags that are switches need no value.
                        None if flag == "print-parcelports" || flag == "print-counters" => {
                            (flag, "on")
                        }
                        None => {
                            return Err(Error::Config(format!("{arg}: expected --hpx:NAME=VALUE")))
                        }
                    };
                    flags.push((name.to_owned(), value.to_owned()));
                }
                None => rest.push(arg.clone()),
            }
        }
        let flag = |name: &str| {
            flags
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        for (name, _) in &flags {
            const KNOWN: [&str; 14] = [
                "parcelport",
                "print-parcelports",
                "print-counters",
                "counters",
                "trace",
                "spin-us",
                "network-thread",
                "threads",
                "locality",
                "localities",
                "agas",
                "host",
                "startup-timeout",
                "peer-timeout",
            ];
            if !KNOWN.contains(&name.as_str()) {
                return Err(Error::Config(format!(
                    "unknown flag --hpx:{name} (known: {})",
                    KNOWN.map(|k| format!("--hpx:{k}")).join(", ")
                )));
            }
        }
        let get = |flag_name: &str, var: &str| {
            flag(flag_name)
                .map(|v| (format!("--hpx:{flag_name}"), v))
                .or_else(|| env(var).map(|v| (var.to_owned(), v)))
        };
        let slurm = env("HPX_LOCALITY").is_none()
            && flag("locality").is_none()
            && env("SLURM_PROCID").is_some();

        if let Some((what, v)) = get("threads", "HPX_THREADS") {
            let n: usize = parse_num(&what, &v)?;
            if n == 0 {
                return Err(bad(&what, &v, "must be at least 1"));
            }
            cfg.threads = Some(n);
        }
        let locality = get("locality", "HPX_LOCALITY").or_else(|| {
            slurm
                .then(|| env("SLURM_PROCID").map(|v| ("SLURM_PROCID".to_owned(), v)))
                .flatten()
        });
        if let Some((what, v)) = locality {
            cfg.locality = LocalityId(parse_num(&what, &v)?);
        }
        let count = get("localities", "HPX_NUM_LOCALITIES").or_else(|| {
            slurm
                .then(|| env("SLURM_NTASKS").map(|v| ("SLURM_NTASKS".to_owned(), v)))
                .flatten()
        });
        if let Some((what, v)) = count {
            cfg.num_localities = parse_num(&what, &v)?;
            if cfg.num_localities == 0 {
                return Err(bad(&what, &v, "must be at least 1"));
            }
        }
        if cfg.locality.0 >= cfg.num_localities {
            return Err(Error::Config(format!(
                "locality {} does not exist in a job of {} localities",
                cfg.locality, cfg.num_localities
            )));
        }
        let port = match env("HPX_PORT") {
            Some(p) => parse_num("HPX_PORT", &p)?,
            None => slurm_port(
                env("SLURM_JOB_ID").as_deref(),
                env("SLURM_STEP_ID").as_deref(),
            ),
        };
        if let Some((what, v)) = get("agas", "HPX_AGAS") {
            cfg.agas = Some(resolve(&what, &v, port)?);
        } else if slurm {
            if let Some(list) = env("SLURM_STEP_NODELIST").or_else(|| env("SLURM_JOB_NODELIST")) {
                let host = first_slurm_host(&list)
                    .ok_or_else(|| bad("SLURM_STEP_NODELIST", &list, "no host in the list"))?;
                cfg.agas = Some(resolve("SLURM_STEP_NODELIST", &host, port)?);
            }
        }
        if let Some((what, v)) = get("host", "HPX_HOST") {
            cfg.host = parse_host(&what, &v)?;
        } else if slurm {
            if let Some(node) = env("SLURMD_NODENAME") {
                cfg.host = parse_host("SLURMD_NODENAME", &node)?;
            }
        }
        if let Some((what, v)) = get("startup-timeout", "HPX_STARTUP_TIMEOUT") {
            cfg.startup_timeout = parse_secs(&what, &v)?;
        }
        if let Some((what, v)) = get("peer-timeout", "HPX_PEER_TIMEOUT") {
            cfg.peer_timeout = parse_secs(&what, &v)?;
        }
        if let Some(v) = env("HPX_LOCALITIES_ON_HOST") {
            let n: usize = parse_num("HPX_LOCALITIES_ON_HOST", &v)?;
            cfg.localities_on_host = Some(n.max(1));
        }
        if let Some((what, v)) = get("spin-us", "HPX_SPIN_US") {
            cfg.spin = Some(Duration::from_micros(parse_num(&what, &v)?));
        }
        if let Some((what, v)) = get("network-thread", "HPX_NETWORK_THREAD") {
            cfg.network_thread = Some(match v.trim() {
                "on" | "1" | "true" => true,
                "off" | "0" | "false" => false,
                _ => return Err(bad(&what, &v, "must be on or off")),
            });
        }
        if let Some((what, v)) = get("parcelport", "HPX_PARCELPORT") {
            (cfg.shm, cfg.network) = parse_parcelports(&what, &v)?;
        }
        if let Some((what, v)) = get("print-parcelports", "HPX_PRINT_PARCELPORTS") {
            cfg.print_parcelports = parse_switch(&what, &v)?;
        }
        if let Some((what, v)) = get("print-counters", "HPX_PRINT_COUNTERS") {
            cfg.print_counters = parse_switch(&what, &v)?;
        }
        let locality = cfg.locality;
        if let Some((what, v)) = get("counters", "HPX_COUNTERS") {
            cfg.counters_file = Some(output_file(&what, &v, locality)?);
        }
        if let Some((what, v)) = get("trace", "HPX_TRACE") {
            cfg.trace_file = Some(output_file(&what, &v, locality)?);
        }
        match env("HPX_SHM").as_deref() {
            None => {}
            Some("off") | Some("") => cfg.shared_dir = None,
            Some(dir) => {
                let dir = std::path::PathBuf::from(dir);
                if !dir.is_dir() {
                    return Err(bad(
                        "HPX_SHM",
                        &dir.display().to_string(),
                        "not a directory",
                    ));
                }
                cfg.shared_dir = Some(dir);
            }
        }
        if let Some(secret) = env("HPX_SECRET") {
            cfg.secret = Some(parse_hex("HPX_SECRET", &secret)?);
        }
        if cfg.num_localities > 1 {
            if cfg.agas.is_none() {
                return Err(Error::Config(format!(
                    "{} localities but no rendezvous address: set HPX_AGAS=HOST:PORT or --hpx:agas, or start the job with hpxrun",
                    cfg.num_localities
                )));
            }
            if cfg.secret.is_none() {
                return Err(Error::Config(
                    "HPX_SECRET is not set: start the job with hpxrun, or export HPX_SECRET=$(openssl rand -hex 32) before srun".into(),
                ));
            }
        }
        Ok((cfg, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn parse(vars: &[(&str, &str)], args: &[&str]) -> Result<(Config, Vec<String>)> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Config::parse(|k| env.get(k).cloned(), &args)
    }

    #[test]
    fn defaults_are_one_locality() {
        let (cfg, rest) = parse(&[], &["prog", "x"]).unwrap();
        assert_eq!(cfg, Config::default());
        assert_eq!(rest, ["prog", "x"]);
    }

    #[test]
    fn hpxrun_environment() {
        let (cfg, _) = parse(
            &[
                ("HPX_LOCALITY", "2"),
                ("HPX_NUM_LOCALITIES", "4"),
                ("HPX_AGAS", "127.0.0.1:5000"),
                ("HPX_SECRET", SECRET),
                ("HPX_THREADS", "3"),
            ],
            &["prog"],
        )
        .unwrap();
        assert_eq!(cfg.locality, LocalityId(2));
        assert_eq!(cfg.num_localities, 4);
        assert_eq!(cfg.agas, Some("127.0.0.1:5000".parse().unwrap()));
        assert_eq!(cfg.threads, Some(3));
        assert_eq!(cfg.secret.as_ref().map(Vec::len), Some(32));
    }

    #[test]
    fn flags_override_environment_and_are_removed() {
        let (cfg, rest) = parse(
            &[("HPX_THREADS", "3")],
            &[
                "prog",
                "--hpx:threads=5",
                "a",
                "--hpx:peer-timeout=1.5",
                "b",
            ],
        )
        .unwrap();
        assert_eq!(cfg.threads, Some(5));
        assert_eq!(cfg.peer_timeout, Duration::from_millis(1500));
        assert_eq!(rest, ["prog", "a", "b"]);
        assert!(parse(&[], &["prog", "--hpx:bogus=1"])
            .unwrap_err()
            .to_string()
            .contains("--hpx:threads"));
        assert!(parse(&[], &["prog", "--hpx:threads"]).is_err());
        assert!(parse(&[], &["prog", "--hpx:threads=0"]).is_err());
        assert!(parse(&[], &["prog", "--hpx:threads=x"]).is_err());
    }

    #[test]
    fn slurm_variables() {
        let (cfg, _) = parse(
            &[
                ("SLURM_PROCID", "3"),
                ("SLURM_NTASKS", "8"),
                ("SLURM_STEP_NODELIST", "localhost,node2"),
                ("HPX_SECRET", SECRET),
                ("HPX_PORT", "6000"),
            ],
            &["prog"],
        )
        .unwrap();
        assert_eq!(cfg.locality, LocalityId(3));
        assert_eq!(cfg.num_localities, 8);
        assert_eq!(cfg.agas.map(|a| a.port()), Some(6000));
        assert!(cfg.agas.is_some_and(|a| a.ip().is_loopback()));
    }

    #[test]
    fn hpx_variables_win_over_slurm() {
        let (cfg, _) = parse(
            &[
                ("SLURM_PROCID", "3"),
                ("SLURM_NTASKS", "8"),
                ("HPX_LOCALITY", "1"),
                ("HPX_NUM_LOCALITIES", "2"),
                ("HPX_AGAS", "127.0.0.1:1"),
                ("HPX_SECRET", SECRET),
            ],
            &["prog"],
        )
        .unwrap();
        assert_eq!((cfg.locality, cfg.num_localities), (LocalityId(1), 2));
    }

    #[test]
    fn slurm_ports_follow_the_job() {
        let a = slurm_port(Some("123456"), Some("0"));
        let b = slurm_port(Some("123457"), Some("0"));
        assert!((10_000..30_000).contains(&a) && (10_000..30_000).contains(&b));
        assert_ne!(a, b);
        assert_eq!(a, slurm_port(Some("123456"), None));
        assert_ne!(a, slurm_port(Some("123456"), Some("1")));
        assert_eq!(slurm_port(None, None), DEFAULT_SLURM_PORT);
        assert_eq!(slurm_port(Some("x"), None), DEFAULT_SLURM_PORT);
    }

    #[test]
    fn slurm_node_lists() {
        assert_eq!(
            first_slurm_host("node[03-05,9],gpu1").as_deref(),
            Some("node03")
        );
        assert_eq!(first_slurm_host("gpu1,node[1-2]").as_deref(), Some("gpu1"));
        assert_eq!(first_slurm_host("single").as_deref(), Some("single"));
        assert_eq!(first_slurm_host("n[7]").as_deref(), Some("n7"));
        assert_eq!(first_slurm_host(""), None);
        assert_eq!(first_slurm_host("n[").as_deref(), None);
        assert_eq!(first_slurm_host("n[]"), None);
    }

    #[test]
    fn network_thread_is_configurable_and_never_for_one_locality() {
        let job = [
            ("HPX_LOCALITY", "1"),
            ("HPX_NUM_LOCALITIES", "2"),
            ("HPX_AGAS", "127.0.0.1:7000"),
            ("HPX_SECRET", "00112233445566778899aabbccddeeff"),
        ];
        let (cfg, _) = parse(&job, &["p", "--hpx:network-thread=on"]).unwrap();
        assert!(cfg.network_thread());
        let (cfg, _) = parse(&job, &["p", "--hpx:network-thread=off"]).unwrap();
        assert!(!cfg.network_thread());
        let mut with_var = job.to_vec();
        with_var.push(("HPX_NETWORK_THREAD", "1"));
        assert!(parse(&with_var, &["p"]).unwrap().0.network_thread());
        assert!(parse(&job, &["p", "--hpx:network-thread=maybe"]).is_err());
        // Workers filling every core leave none for a network thread.
        let mut full = job.to_vec();
        full.push(("HPX_LOCALITIES_ON_HOST", "2"));
        assert!(!parse(&full, &["p"]).unwrap().0.network_thread());
        let (one, _) = parse(&[], &["p", "--hpx:network-thread=on"]).unwrap();
        assert!(!one.network_thread());
    }

    #[test]
    fn parcelports_are_chosen_by_list() {
        let (cfg, _) = parse(&[], &["p"]).unwrap();
        assert_eq!((cfg.shm, cfg.network), (true, Network::Quic));
        assert!(!cfg.print_parcelports);
        for (list, shm, network) in [
            ("tcp", false, Network::Tcp),
            ("shm,tcp", true, Network::Tcp),
            ("quic", false, Network::Quic),
            (" shm ", true, Network::Quic),
            ("tcp,shm,tcp", true, Network::Tcp),
        ] {
            let (cfg, _) = parse(&[("HPX_PARCELPORT", list)], &["p"]).unwrap();
            assert_eq!((cfg.shm, cfg.network), (shm, network), "{list}");
        }
        let (cfg, rest) = parse(
            &[("HPX_PARCELPORT", "tcp")],
            &[
                "p",
                "--hpx:parcelport=shm,quic",
                "--hpx:print-parcelports",
                "x",
            ],
        )
        .unwrap();
        assert_eq!(
            (cfg.shm, cfg.network),
            (true, Network::Quic),
            "the flag wins"
        );
        assert!(cfg.print_parcelports);
        assert_eq!(rest, ["p", "x"]);
        for bad in ["tcp,quic", "mpi", "shm,", ""] {
            let e = parse(&[("HPX_PARCELPORT", bad)], &["p"]).unwrap_err();
            assert!(e.to_string().contains("HPX_PARCELPORT"), "{bad}: {e}");
        }
        assert!(parse(&[("HPX_PRINT_PARCELPORTS", "maybe")], &["p"]).is_err());
        assert!(parse(&[], &["p", "--hpx:parcelport"]).is_err());
    }

    #[test]
    fn counters_and_trace_are_configurable() {
        let (cfg, _) = parse(&[], &["p"]).unwrap();
        assert!(!cfg.print_counters);
        assert_eq!((cfg.counters_file, cfg.trace_file), (None, None));
        let job = [
            ("HPX_LOCALITY", "2"),
            ("HPX_NUM_LOCALITIES", "4"),
            ("HPX_AGAS", "127.0.0.1:7000"),
            ("HPX_SECRET", "00112233445566778899aabbccddeeff"),
            ("HPX_COUNTERS", "/tmp/c-%l.json"),
            ("HPX_PRINT_COUNTERS", "1"),
        ];
        let (cfg, rest) =
            parse(&job, &["p", "--hpx:trace=t%l.json", "--hpx:print-counters"]).unwrap();
        assert!(cfg.print_counters);
        assert_eq!(cfg.counters_file, Some("/tmp/c-2.json".into()));
        assert_eq!(cfg.trace_file, Some("t2.json".into()));
        assert_eq!(rest, ["p"]);
        assert!(parse(&[("HPX_PRINT_COUNTERS", "maybe")], &["p"]).is_err());
        let e = parse(&[], &["p", "--hpx:trace="]).unwrap_err();
        assert!(e.to_string().contains("--hpx:trace"), "{e}");
        assert!(parse(&[], &["p", "--hpx:trace"]).is_err());
    }

    #[test]
    fn clear_errors_for_bad_layouts() {
        let e = parse(
            &[("HPX_LOCALITY", "4"), ("HPX_NUM_LOCALITIES", "4")],
            &["p"],
        )
        .unwrap_err();
        assert!(e.to_string().contains("locality 4 does not exist"), "{e}");
        let e = parse(
            &[("HPX_NUM_LOCALITIES", "2"), ("HPX_SECRET", SECRET)],
            &["p"],
        )
        .unwrap_err();
        assert!(e.to_string().contains("HPX_AGAS"), "{e}");
        let e = parse(
            &[("HPX_NUM_LOCALITIES", "2"), ("HPX_AGAS", "127.0.0.1:9")],
            &["p"],
        )
        .unwrap_err();
        assert!(e.to_string().contains("HPX_SECRET"), "{e}");
        let e = parse(&[("HPX_SECRET", "abc")], &["p"]).unwrap_err();
        assert!(
            !e.to_string().contains("abc"),
            "the secret must not be echoed: {e}"
        );
        assert!(parse(&[("HPX_STARTUP_TIMEOUT", "-1")], &["p"]).is_err());
        assert!(parse(&[("HPX_STARTUP_TIMEOUT", "inf")], &["p"]).is_err());
        assert!(parse(&[("HPX_NUM_LOCALITIES", "0")], &["p"]).is_err());
    }
}
