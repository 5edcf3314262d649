//! Separate hosts for real: a job of four localities on two "hosts" made of
//! Linux network namespaces joined by a veth pair.
//!
//! Host A is the namespace `hpx<t>A-<pid>` with address 198.18.0.1, host B
//! is `hpx<t>B-<pid>` with 198.18.0.2 (RFC 2544's benchmarking range; the
//! traffic never leaves the veth pair). Each host has a shared-memory
//! directory of its own (`HPX_SHM`), since namespaces share `/dev/shm`.
//! Localities 0 and 1 run on A, 2 and 3 on B, each started as a cluster
//! user starts them, `ip netns exec <host> <this test binary>` with the
//! per-process variables: `HPX_LOCALITY`, `HPX_AGAS`, `HPX_HOST`, ... in
//! the QUIC run, Slurm's (`SLURM_PROCID`, `SLURM_STEP_NODELIST`,
//! `SLURMD_NODENAME`, `SLURM_JOB_ID`) in the TCP run.
//!
//! Inside, the localities call an action on every other locality, reduce,
//! gather, pass a barrier, broadcast from locality 3 and create an array
//! collectively whose 32 MiB localities 0 (on A) and 3 (on B) gather with
//! `to_vec` and check element by element. The parent checks what each
//! printed: that it ran in its host's namespace, that the localities of one
//! host talk through shared memory and those of different hosts through
//! QUIC (or TCP), the results, the exit codes, and that no shared-memory
//! file is left behind. A third run kills locality 3 (on B) and checks that
//! locality 0 (on A) learns within seconds that host B lost a locality
//! (today through its own peer timeout: locality 2's abort does not cross
//! to host A, so A may name 2, which ended in order, instead of 3).
//!
//! Setting up namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and
//! iproute2's `ip`; where the kernel or the permissions forbid it, the
//! tests print `SKIPPED:` with the reason and pass. Nothing else skips.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{done, ensure, s, spmd, Output, RawJob};
use hpx::prelude::*;
use hpx::Error;

/// The hosts' addresses: A, B.
const ADDRESSES: [&str; 2] = ["198.18.0.1", "198.18.0.2"];
/// Localities in each job: two per host.
const LOCALITIES: u32 = 4;
/// Elements of the distributed array (4 Mi f64: 32 MiB).
const ARRAY_LEN: usize = 4 << 20;
/// Elements broadcast from locality 3.
const BROADCAST_LEN: u64 = 100_000;
/// The root of the broadcast (on host B).
const BROADCAST_ROOT: u32 = 3;
/// How long one job may run before its processes are killed.
const RUN_DEADLINE: Duration = Duration::from_secs(60);
/// Set on the processes this test starts as localities (under Slurm's
/// variables `HPX_LOCALITY` is not set, so the harness's `in_locality`
/// cannot tell).
const LOCALITY_MARK: &str = "HPX_NETNS_TEST_LOCALITY";
/// Variables of the parent's environment that would change the jobs: each
/// run sets those it needs.
const JOB_VARIABLES: &[&str] = &[
    "HPX_LOCALITY",
    "HPX_NUM_LOCALITIES",
    "HPX_AGAS",
    "HPX_HOST",
    "HPX_PORT",
    "HPX_SECRET",
    "HPX_SHM",
    "HPX_PARCELPORT",
    "HPX_PRINT_PARCELPORTS",
    "HPX_PRINT_COUNTERS",
    "HPX_COUNTERS",
    "HPX_TRACE",
    "HPX_CONTROL_FD",
    "HPX_LOCALITIES_ON_HOST",
    "HPX_PEER_TIMEOUT",
    "HPX_STARTUP_TIMEOUT",
    "HPX_TEST_ROLE",
    "SLURM_PROCID",
    "SLURM_NTASKS",
    "SLURM_STEP_NODELIST",
    "SLURM_JOB_NODELIST",
    "SLURMD_NODENAME",
    "SLURM_JOB_ID",
    "SLURM_STEP_ID",
];

/// Whether this process is a locality started by one of these tests.
fn is_locality() -> bool {
    std::env::var_os(LOCALITY_MARK).is_some()
}

/// The host (0: A, 1: B) of locality `l`.
fn host_of(l: u32) -> usize {
    usize::from(l >= LOCALITIES / 2)
}

/// This process's network namespace as the kernel names it (`net:[4026532177]`).
fn netns() -> String {
    match std::fs::read_link("/proc/self/ns/net") {
        Ok(link) => link.display().to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

// ---------------------------------------------------------------------------
// The localities' side.

/// Runs where it is called: which locality and namespace that is, and a
/// value computed from the caller's `x` and the callee's id.
#[hpx::action]
async fn visit(x: u64) -> (u32, String, u64) {
    let here = hpx::get_locality_id();
    (here, netns(), x * 1000 + u64::from(here))
}

/// The SPMD body of the QUIC and TCP runs: actions, collectives and a
/// distributed array across the two hosts, each step printed as a RESULT.
async fn across_hosts(test: &'static str) -> Result<(), String> {
    let me = hpx::get_locality_id();
    let n = hpx::get_num_localities();
    ensure(n == LOCALITIES, format!("a job of {n} localities"))?;
    let ns = netns();
    println!("RESULT netns {ns}");

    // Every locality was found at its host's address.
    let addresses: Vec<String> = hpx::locality_addresses()
        .iter()
        .map(|a| a.ip().to_string())
        .collect();
    let expected: Vec<&str> = (0..n).map(|l| ADDRESSES[host_of(l)]).collect();
    ensure(
        addresses == expected,
        format!("locality addresses {addresses:?}, expected {expected:?}"),
    )?;
    println!("RESULT addresses {}", addresses.join(" "));

    // Each host is one namespace, the two are different.
    let all_ns: Vec<String> = hpx::all_gather(ns.clone()).await.map_err(s)?;
    ensure(
        all_ns.len() == n as usize
            && all_ns[0] == all_ns[1]
            && all_ns[2] == all_ns[3]
            && all_ns[0] != all_ns[2]
            && all_ns[me as usize] == ns,
        format!("namespaces of the localities: {all_ns:?}"),
    )?;
    println!("RESULT gathered {}", all_ns.join(" "));

    // An action on every other locality, computed there.
    let x = u64::from(me) + 1;
    let calls = (0..n)
        .filter(|j| *j != me)
        .map(|j| async move { (j, hpx::async_at(LocalityId(j), visit, x).await) });
    for (j, reply) in futures::future::join_all(calls).await {
        let (who, their_ns, value) = reply.map_err(|e| format!("visit {j}: {e}"))?;
        ensure(
            who == j && their_ns == all_ns[j as usize] && value == x * 1000 + u64::from(j),
            format!("visit {j} ran on {who} in {their_ns} and gave {value}"),
        )?;
        println!("RESULT called {j} {value} {their_ns}");
    }

    let sum = hpx::all_reduce(u64::from(me), ReduceOp::Sum)
        .await
        .map_err(s)?;
    ensure(sum == 6, format!("all_reduce of the ids gave {sum}"))?;
    println!("RESULT sum {sum}");

    hpx::barrier().await.map_err(s)?;
    println!("RESULT barrier passed");

    let sent: Vec<u64> = (0..BROADCAST_LEN).map(|i| i * 7 + 3).collect();
    let mine = (me == BROADCAST_ROOT).then(|| (ns.clone(), sent.clone()));
    let (from, got) = hpx::broadcast(mine, BROADCAST_ROOT).await.map_err(s)?;
    ensure(
        from == all_ns[BROADCAST_ROOT as usize] && got == sent,
        format!("broadcast from {from} of {} values", got.len()),
    )?;
    println!("RESULT broadcast {} from {from}", got.len());

    // A distributed array made by all, each writing its own partition.
    let a = hpx::zeros::<f64>(ARRAY_LEN)
        .distribution(Distribution::Block)
        .collective()
        .await
        .map_err(s)?;
    let owners: Vec<u32> = a.localities().iter().map(|l| l.0).collect();
    ensure(
        owners == [0, 1, 2, 3],
        format!("partitions on localities {owners:?}"),
    )?;
    {
        let parts = a.local_partitions();
        ensure(parts.len() == 1, format!("{} partitions here", parts.len()))?;
        let offset = parts[0].global_offset().ok_or("an empty partition")?;
        let mut part = a.local_partition_mut().await.map_err(s)?;
        for (k, x) in part.iter_mut().enumerate() {
            *x = (offset + k) as f64;
        }
        println!("RESULT wrote {} from {offset}", part.len());
    }
    // Every partition is written before anyone reads.
    hpx::barrier().await.map_err(s)?;
    if me == 0 || me == 3 {
        let start = Instant::now();
        let all = a.to_vec().await.map_err(s)?;
        let took = start.elapsed();
        ensure(
            all.len() == ARRAY_LEN,
            format!("to_vec gave {} elements", all.len()),
        )?;
        if let Some(i) = (0..all.len()).find(|&i| all[i] != i as f64) {
            return Err(format!("to_vec: element {i} is {}", all[i]));
        }
        println!(
            "RESULT to_vec {} elements ok in {} ms",
            all.len(),
            took.as_millis()
        );
    }
    // Nobody lets go of the array while it is read.
    hpx::barrier().await.map_err(s)?;
    done(test);
    Ok(())
}

/// Arrivals at [`count_and_wait_forever`] on this locality.
static ARRIVALS: AtomicU32 = AtomicU32::new(0);
static ARRIVALS_CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Counts the caller as arrived, then never answers.
#[hpx::action]
async fn count_and_wait_forever() {
    ARRIVALS.fetch_add(1, Ordering::SeqCst);
    ARRIVALS_CHANGED.notify_waiters();
    std::future::pending::<()>().await
}

/// Waits until a caller has arrived at [`count_and_wait_forever`] here.
async fn first_arrival() {
    loop {
        let changed = ARRIVALS_CHANGED.notified();
        if ARRIVALS.load(Ordering::SeqCst) >= 1 {
            return;
        }
        changed.await;
    }
}

/// The locality of the run that loses locality 3: locality 0 (on A) waits
/// on a call to it, and it dies (SIGKILL) once the call has arrived.
fn losing_a_locality() {
    let victim = LocalityId(3);
    let result = hpx::Runtime::builder().threads(2).run(move || async move {
        let me = hpx::get_locality_id();
        println!("BODY RAN {me} {}", netns());
        // Everyone is connected before anyone dies.
        hpx::barrier().await?;
        if me == victim.0 {
            first_arrival().await;
            println!("RESULT dying {me}");
            // SAFETY: raising SIGKILL on ourselves.
            unsafe { libc::raise(libc::SIGKILL) };
        }
        if me != 0 {
            return Ok(());
        }
        let start = Instant::now();
        let outcome = hpx::async_at(victim, count_and_wait_forever, ()).await;
        let waited = start.elapsed().as_millis();
        // Host B's localities: the victim, and its neighbour, who sees the
        // death at once (through its pidfd) and ends its part of the job.
        let named = |text: &str| {
            [2, 3]
                .into_iter()
                .find(|l| text.contains(&format!("locality {l} ")))
        };
        match outcome {
            Err(Error::LocalityLost { locality, reason }) if locality == victim => {
                println!("RESULT lost 3 after {waited} ms: locality lost: {reason}");
            }
            Err(Error::Aborted(why)) if named(&why).is_some() => {
                let l = named(&why).unwrap_or_default();
                println!("RESULT lost {l} after {waited} ms: aborted: {why}");
            }
            other => println!("RESULT unexpected {other:?}"),
        }
        match hpx::async_at(victim, visit, 1).await {
            Err(Error::LocalityLost { .. } | Error::Aborted(_)) => {
                println!("RESULT later calls fail")
            }
            other => println!("RESULT later call gave {other:?}"),
        }
        Ok::<_, Error>(())
    });
    println!(
        "RESULT exit {}",
        match result {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("err {e}"),
        }
    );
}

// ---------------------------------------------------------------------------
// The parent's side: two hosts.

/// Why the test cannot make its hosts here (the only reason to skip).
struct Forbidden(String);

/// Two network namespaces joined by a veth pair, each with a shared-memory
/// directory, and the job running on them. Dropping it kills the job's
/// processes, deletes the namespaces (which takes the veth pair with them)
/// and removes the directories.
struct TwoHosts {
    ip: PathBuf,
    /// The namespaces made so far (A, then B).
    namespaces: Vec<String>,
    /// The shared-memory directories made so far (A, then B).
    shm: Vec<PathBuf>,
    job: Option<RawJob>,
}

/// The prefix of the names of this test's namespaces.
const NS_PREFIX: &str = "hpx";
/// The prefix of the names of this test's shared-memory directories.
const SHM_PREFIX: &str = "hpx-netns-";

/// iproute2's `ip`, from `PATH` or the usual places.
fn find_ip() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join("ip"))
        .find(|p| p.is_file())
}

/// Whether `ip`'s complaint means that the kernel or the permissions forbid
/// the operation (rather than a mistake of this test).
fn forbidden(stderr: &str) -> bool {
    [
        "Operation not permitted",
        "Permission denied",
        "not supported",
        "Not supported",
        "Function not implemented",
        "Unknown device type",
        "unshare failed",
    ]
    .iter()
    .any(|m| stderr.contains(m))
}

/// Where the shared-memory directories go: `/dev/shm`, else the temporary
/// directory.
fn shm_root() -> PathBuf {
    let dev_shm = PathBuf::from("/dev/shm");
    if dev_shm.is_dir() {
        dev_shm
    } else {
        std::env::temp_dir()
    }
}

/// Whether process `pid` exists.
fn alive(pid: &str) -> bool {
    Path::new("/proc").join(pid).exists()
}

impl TwoHosts {
    /// Makes the two hosts for the test tagged `tag` (one letter, so that
    /// tests sharing a process never share a host), or says why it cannot.
    fn new(tag: char) -> Result<TwoHosts, Forbidden> {
        let Some(ip) = find_ip() else {
            return Err(Forbidden("iproute2's `ip` is not installed".into()));
        };
        let pid = std::process::id();
        let mut hosts = TwoHosts {
            ip,
            namespaces: Vec::new(),
            shm: Vec::new(),
            job: None,
        };
        hosts.sweep();
        let names = [
            format!("{NS_PREFIX}{tag}A-{pid}"),
            format!("{NS_PREFIX}{tag}B-{pid}"),
        ];
        for name in &names {
            // A namespace of this name is a leftover of an earlier process
            // with this pid (no other process has it now).
            if Path::new("/run/netns").join(name).exists() {
                let _ = hosts.ip_quiet(&["netns", "del", name]);
            }
            let (ok, stderr) = hosts.ip_quiet(&["netns", "add", name]);
            if !ok {
                if forbidden(&stderr) {
                    return Err(Forbidden(format!(
                        "cannot create a network namespace (`ip netns add {name}`: {})",
                        stderr.trim()
                    )));
                }
                panic!("ip netns add {name} failed: {stderr}");
            }
            hosts.namespaces.push(name.clone());
        }
        // Interface names: at most 15 bytes, unique whatever the namespace.
        let veth = [format!("hpx{tag}a{pid}"), format!("hpx{tag}b{pid}")];
        let (ok, stderr) = hosts.ip_quiet(&[
            "link", "add", &veth[0], "netns", &names[0], "type", "veth", "peer", "name", &veth[1],
            "netns", &names[1],
        ]);
        if !ok {
            if forbidden(&stderr) {
                return Err(Forbidden(format!(
                    "cannot create a veth pair between namespaces: {}",
                    stderr.trim()
                )));
            }
            panic!("ip link add (veth) failed: {stderr}");
        }
        for h in 0..2 {
            let address = format!("{}/24", ADDRESSES[h]);
            hosts.ip(&["-n", &names[h], "addr", "add", &address, "dev", &veth[h]]);
            hosts.ip(&["-n", &names[h], "link", "set", "lo", "up"]);
            hosts.ip(&["-n", &names[h], "link", "set", &veth[h], "up"]);
        }
        for side in ["a", "b"] {
            let dir = shm_root().join(format!("{SHM_PREFIX}{pid}-{tag}{side}"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
            hosts.shm.push(dir);
        }
        Ok(hosts)
    }

    /// Removes the namespaces and directories of earlier runs of this test
    /// whose process is gone (killed before its guard could clean up).
    fn sweep(&self) {
        if let Ok(entries) = std::fs::read_dir("/run/netns") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let stale = name
                    .strip_prefix(NS_PREFIX)
                    .and_then(|rest| rest.split_once('-'))
                    .filter(|(t, pid)| {
                        t.len() == 2
                            && (t.ends_with('A') || t.ends_with('B'))
                            && !pid.is_empty()
                            && pid.bytes().all(|b| b.is_ascii_digit())
                            && !alive(pid)
                    })
                    .is_some();
                if stale {
                    let _ = self.ip_quiet(&["netns", "del", &name]);
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(shm_root()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let stale = name
                    .strip_prefix(SHM_PREFIX)
                    .and_then(|rest| rest.split_once('-'))
                    .is_some_and(|(pid, _)| {
                        !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && !alive(pid)
                    });
                if stale {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    /// Runs `ip args`: whether it succeeded, and what it said on stderr.
    fn ip_quiet(&self, args: &[&str]) -> (bool, String) {
        match Command::new(&self.ip)
            .args(args)
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) => (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ),
            Err(e) => (false, format!("cannot run {}: {e}", self.ip.display())),
        }
    }

    /// Runs `ip args`, failing the test if it fails.
    fn ip(&self, args: &[&str]) {
        let (ok, stderr) = self.ip_quiet(args);
        assert!(ok, "ip {} failed: {stderr}", args.join(" "));
    }

    /// The namespace of host `h` as the kernel names it (`net:[inode]`).
    fn netns_of(&self, h: usize) -> String {
        let path = Path::new("/run/netns").join(&self.namespaces[h]);
        let meta =
            std::fs::metadata(&path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
        format!("net:[{}]", meta.ino())
    }

    /// Starts locality `l` of `test` on its host, with `env` (besides the
    /// host's shared-memory directory).
    fn start(&mut self, test: &str, l: u32, env: &[(&str, String)]) {
        let exe = std::env::current_exe().expect("test binary path");
        let h = host_of(l);
        let mut cmd = Command::new(&self.ip);
        cmd.args(["netns", "exec", &self.namespaces[h]])
            .arg(exe)
            .args(common::self_args(test));
        for var in JOB_VARIABLES {
            cmd.env_remove(var);
        }
        cmd.env(LOCALITY_MARK, "1")
            .env("HPX_LOG", "warn")
            .env("HPX_SHM", &self.shm[h])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        // A locality dies with the thread that started it, even if this
        // test is killed before its guard can end the job (`ip netns exec`
        // execs the locality: the setting carries over).
        // SAFETY: prctl(2) is async-signal-safe and touches no memory of
        // the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start locality {l}: {e}"));
        self.job.get_or_insert_with(RawJob::empty).adopt(child);
    }

    /// Waits for the job's processes (in the order started), killing them
    /// and failing the test at [`RUN_DEADLINE`].
    fn wait(&mut self) -> Vec<Output> {
        self.job
            .take()
            .expect("a job was started")
            .wait(RUN_DEADLINE)
    }

    /// Files left in the shared-memory directories.
    fn leftovers(&self) -> Vec<String> {
        self.shm
            .iter()
            .flat_map(|dir| {
                std::fs::read_dir(dir)
                    .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
                    .flatten()
                    .map(|e| e.path().display().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        // The processes first: a namespace lives on while one is inside.
        drop(self.job.take());
        for name in std::mem::take(&mut self.namespaces).into_iter().rev() {
            let (ok, stderr) = self.ip_quiet(&["netns", "del", &name]);
            if !ok {
                eprintln!("could not delete network namespace {name}: {stderr}");
            }
        }
        for dir in self.shm.drain(..) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The hosts for `tag`, or `None` after printing why the test is skipped.
fn two_hosts(test: &str, tag: char) -> Option<TwoHosts> {
    match TwoHosts::new(tag) {
        Ok(hosts) => Some(hosts),
        Err(Forbidden(why)) => {
            println!("SKIPPED: {test}: {why}");
            eprintln!("SKIPPED: {test}: {why}");
            None
        }
    }
}

/// The variables of locality `l` as `hpxrun` would set them, by hand.
fn hpx_variables(
    l: u32,
    port: u16,
    secret: &str,
    parcelports: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("HPX_LOCALITY", l.to_string()),
        ("HPX_NUM_LOCALITIES", LOCALITIES.to_string()),
        ("HPX_AGAS", format!("{}:{port}", ADDRESSES[0])),
        ("HPX_HOST", ADDRESSES[host_of(l)].to_owned()),
        ("HPX_SECRET", secret.to_owned()),
        ("HPX_PARCELPORT", parcelports.to_owned()),
        ("HPX_PRINT_PARCELPORTS", "1".to_owned()),
    ]
}

/// The variables Slurm sets for task `l` of a job step on the two hosts
/// (addresses for host names), with the secret a user exports.
fn slurm_variables(l: u32, secret: &str, parcelports: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SLURM_PROCID", l.to_string()),
        ("SLURM_NTASKS", LOCALITIES.to_string()),
        ("SLURM_STEP_NODELIST", ADDRESSES.join(",")),
        ("SLURMD_NODENAME", ADDRESSES[host_of(l)].to_owned()),
        ("SLURM_JOB_ID", std::process::id().to_string()),
        ("SLURM_STEP_ID", "0".to_owned()),
        ("HPX_SECRET", secret.to_owned()),
        ("HPX_PARCELPORT", parcelports.to_owned()),
        ("HPX_PRINT_PARCELPORTS", "1".to_owned()),
    ]
}

/// A rendezvous port (the namespaces are fresh: any port is free there).
fn port() -> u16 {
    20_000 + (std::process::id() % 20_000) as u16
}

/// Everything the job printed, for failure messages.
fn all(outs: &[Output]) -> String {
    outs.iter()
        .enumerate()
        .map(|(l, out)| format!("=== locality {l}: {out}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What locality `l` should say about its parcelports: shared memory to
/// the other locality of its host, `network` to those of the other host.
fn expected_parcelports(l: u32, network: &str) -> String {
    let mut ways: Vec<(&str, Vec<String>)> = Vec::new();
    for peer in (0..LOCALITIES).filter(|p| *p != l) {
        let way = if host_of(peer) == host_of(l) {
            "shm"
        } else {
            network
        };
        match ways.iter_mut().find(|(w, _)| *w == way) {
            Some((_, to)) => to.push(peer.to_string()),
            None => ways.push((way, vec![peer.to_string()])),
        }
    }
    let ways: Vec<String> = ways
        .iter()
        .map(|(w, to)| format!("{w} to {}", to.join(" ")))
        .collect();
    format!("{l}: {}", ways.join(", "))
}

/// Checks that every locality ran in its host's namespace and reached the
/// others as expected (shared memory within a host, `network` across).
fn check_placement(hosts: &TwoHosts, outs: &[Output], network: &str, netns_tag: &str) {
    let everything = all(outs);
    for (l, out) in (0..LOCALITIES).zip(outs) {
        let ns = hosts.netns_of(host_of(l));
        let said = out.tagged(netns_tag);
        assert!(
            said.len() == 1 && said[0].ends_with(&ns),
            "locality {l} should run in {ns}: {everything}"
        );
        assert_eq!(
            out.tagged("parcelports of locality"),
            [expected_parcelports(l, network)],
            "parcelports of locality {l}: {everything}"
        );
        println!(
            "locality {l} on host {} ({ns}): parcelports of locality {}",
            ["A", "B"][host_of(l)],
            expected_parcelports(l, network)
        );
    }
}

/// Runs the cross-host job of `test` with `variables` for each locality
/// and checks all it printed.
fn run_across_hosts(
    test: &'static str,
    tag: char,
    network: &str,
    variables: impl Fn(u32, &str) -> Vec<(&'static str, String)>,
) {
    let Some(mut hosts) = two_hosts(test, tag) else {
        return;
    };
    let secret = common::secret(tag as u8);
    let start = Instant::now();
    for l in 0..LOCALITIES {
        hosts.start(test, l, &variables(l, &secret));
    }
    let outs = hosts.wait();
    let took = start.elapsed();
    let everything = all(&outs);
    for (l, out) in (0..LOCALITIES).zip(&outs) {
        assert!(out.status.success(), "locality {l} failed: {everything}");
    }
    check_placement(&hosts, &outs, network, "RESULT netns");
    let ns: Vec<String> = (0..2).map(|h| hosts.netns_of(h)).collect();
    let host_ns = |l: u32| ns[host_of(l)].clone();
    for (l, out) in (0..LOCALITIES).zip(&outs) {
        let results = |tag: &str| out.tagged(tag);
        assert_eq!(
            results("RESULT addresses"),
            ["198.18.0.1 198.18.0.1 198.18.0.2 198.18.0.2"],
            "locality {l}: {everything}"
        );
        let gathered: Vec<String> = (0..LOCALITIES).map(host_ns).collect();
        assert_eq!(
            results("RESULT gathered"),
            [gathered.join(" ")],
            "locality {l}: {everything}"
        );
        let mut called = results("RESULT called");
        called.sort();
        let expected: Vec<String> = (0..LOCALITIES)
            .filter(|j| *j != l)
            .map(|j| format!("{j} {} {}", (l + 1) * 1000 + j, host_ns(j)))
            .collect();
        assert_eq!(called, expected, "locality {l}: {everything}");
        assert_eq!(results("RESULT sum"), ["6"], "locality {l}: {everything}");
        assert_eq!(
            results("RESULT barrier passed").len(),
            1,
            "locality {l}: {everything}"
        );
        assert_eq!(
            results("RESULT broadcast"),
            [format!("{BROADCAST_LEN} from {}", host_ns(BROADCAST_ROOT))],
            "locality {l}: {everything}"
        );
        let share = ARRAY_LEN / LOCALITIES as usize;
        assert_eq!(
            results("RESULT wrote"),
            [format!("{share} from {}", share * l as usize)],
            "locality {l}: {everything}"
        );
        let to_vec = results("RESULT to_vec");
        if l == 0 || l == 3 {
            assert!(
                to_vec.len() == 1 && to_vec[0].starts_with(&format!("{ARRAY_LEN} elements ok in")),
                "locality {l}: {everything}"
            );
            println!(
                "locality {l} on host {}: to_vec {}",
                ["A", "B"][host_of(l)],
                to_vec[0]
            );
        } else {
            assert!(to_vec.is_empty(), "locality {l}: {everything}");
        }
    }
    for (l, out) in (0..LOCALITIES).zip(&outs) {
        let tag = format!("BODY DONE {test}");
        assert_eq!(
            out.tagged(&tag),
            [l.to_string()],
            "locality {l} did not finish: {everything}"
        );
    }
    let left = hosts.leftovers();
    assert!(
        left.is_empty(),
        "files left in the shared-memory directories: {left:?}"
    );
    println!("{test}: 4 localities on 2 hosts over shm and {network} in {took:?}");
}

#[test]
fn quic_between_two_hosts_started_with_hpx_variables() {
    const TEST: &str = "quic_between_two_hosts_started_with_hpx_variables";
    if is_locality() {
        return spmd(|| across_hosts(TEST));
    }
    run_across_hosts(TEST, 'q', "quic", |l, secret| {
        hpx_variables(l, port(), secret, "shm,quic")
    });
}

#[test]
fn tcp_between_two_hosts_started_with_slurm_variables() {
    const TEST: &str = "tcp_between_two_hosts_started_with_slurm_variables";
    if is_locality() {
        return spmd(|| across_hosts(TEST));
    }
    run_across_hosts(TEST, 't', "tcp", |l, secret| {
        slurm_variables(l, secret, "shm,tcp")
    });
}

#[test]
fn a_host_learns_that_a_locality_on_the_other_host_died() {
    const TEST: &str = "a_host_learns_that_a_locality_on_the_other_host_died";
    if is_locality() {
        return losing_a_locality();
    }
    let Some(mut hosts) = two_hosts(TEST, 'k') else {
        return;
    };
    let secret = common::secret(b'k');
    for l in 0..LOCALITIES {
        let mut env = hpx_variables(l, port(), &secret, "shm,quic");
        env.push(("HPX_PEER_TIMEOUT", "2".to_owned()));
        hosts.start(TEST, l, &env);
    }
    let outs = hosts.wait();
    let everything = all(&outs);
    check_placement(&hosts, &outs, "quic", "BODY RAN");
    assert_eq!(
        outs[3].tagged("RESULT dying"),
        ["3"],
        "locality 3 should have died: {everything}"
    );
    assert_eq!(
        outs[3].status.signal(),
        Some(libc::SIGKILL),
        "locality 3 was killed by SIGKILL: {everything}"
    );
    let root = outs[0].tagged("RESULT");
    assert_eq!(root.len(), 3, "{everything}");
    // Locality 0 learns that host B lost its locality 3 within two seconds
    // and names it: locality 2 (on B) sees locality 3's end at once and
    // tells the root, before its own peer timeout could blame anyone.
    let (culprit, ms): (u32, u64) = root[0]
        .strip_prefix("lost ")
        .and_then(|rest| rest.split_once(" after "))
        .and_then(|(l, rest)| Some((l.parse().ok()?, rest.split_once(" ms")?.0.parse().ok()?)))
        .unwrap_or_else(|| panic!("locality 0 did not see host B's loss: {everything}"));
    assert_eq!(
        culprit, 3,
        "locality 0 blamed locality {culprit}: {everything}"
    );
    assert!(
        ms < 2_000,
        "locality 0 learnt of the loss only after {ms} ms: {everything}"
    );
    assert_eq!(root[1], "later calls fail", "{everything}");
    for l in 0..3 {
        let exit = outs[l as usize].tagged("RESULT exit");
        assert!(
            exit.len() == 1
                && exit[0].starts_with("err job aborted: ")
                && exit[0].contains("locality 3 was lost"),
            "locality {l} should end with the abort naming locality 3: {everything}"
        );
        assert!(
            outs[l as usize].status.success(),
            "locality {l} exits in order: {everything}"
        );
    }
    println!("{TEST}: locality 0 on host A: {}", root[0]);
    println!(
        "{TEST}: locality 2 on host B: {}",
        outs[2].tagged("RESULT exit").join(" ")
    );
    let left = hosts.leftovers();
    println!("{TEST}: files left by the killed locality: {left:?}");
}
