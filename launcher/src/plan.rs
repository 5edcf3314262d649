//! Turning [`Options`] into the list of processes to start.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs, UdpSocket};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::cli::{Options, Runner};
use crate::error::LaunchError;
use crate::hosts::{self, HostEntry};

/// One process that `hpxrun` starts and supervises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSpec {
    /// Human-readable name used in `hpxrun:` messages, e.g. `locality 2` or `srun`.
    pub name: String,
    /// Prefix of each forwarded output line, e.g. `[L2] ` (empty with `--no-prefix`).
    pub prefix: String,
    /// The program executed locally (the user's program, `ssh` or `srun`).
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Variables added to the inherited environment.
    pub env: Vec<(OsString, OsString)>,
    /// Whether the child reads `hpxrun`'s standard input (otherwise it gets `/dev/null`).
    pub inherit_stdin: bool,
    /// How the child receives `hpxrun`'s channel (the job secret, then news of failed
    /// localities), if it does.
    pub control: Option<ControlVia>,
}

/// Where a child finds `hpxrun`'s channel (a pipe; see the runtime's `HPX_CONTROL_FD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlVia {
    /// On descriptor [`CONTROL_FD`], named in `HPX_CONTROL_FD` (local children).
    Descriptor,
    /// On standard input, which the remote shell moves to [`CONTROL_FD`] (`ssh`).
    Stdin,
}

/// The descriptor number of `hpxrun`'s channel in a locality.
pub const CONTROL_FD: i32 = 3;

impl ChildSpec {
    /// A [`Command`] with the program, arguments, environment and standard input of this spec.
    ///
    /// Standard output and error are left for the caller to configure.
    pub fn to_command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if self.inherit_stdin {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        command
    }
}

/// Everything `hpxrun` will start for a job, in locality order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    /// The processes to start.
    pub children: Vec<ChildSpec>,
    /// The job secret (64 hex digits), sent over each child's channel.
    pub secret: String,
}

/// Values shared by all localities of one job.
struct JobContext {
    /// `HPX_AGAS` (unused by `srun`, which lets the runtime find locality 0 itself).
    agas: OsString,
    /// Variables for every locality beyond those of the options.
    extra: Vec<(OsString, OsString)>,
}

/// Works out the processes for `opts`: reads the hostfile, assigns hosts, checks that the
/// runner can reach them, chooses the AGAS port and generates the job secret.
///
/// `HPX_AGAS` from this process's environment, when set, is used instead of a fresh port.
pub fn plan(opts: &Options) -> Result<LaunchPlan, LaunchError> {
    plan_with(opts, Vec::new())
}

/// [`plan`], with the variables `extra` given to every locality.
pub(crate) fn plan_with(
    opts: &Options,
    extra: Vec<(OsString, OsString)>,
) -> Result<LaunchPlan, LaunchError> {
    validate(opts)?;
    let secret = generate_secret().map_err(LaunchError::Secret)?;
    if opts.runner == Runner::Srun {
        return Ok(LaunchPlan {
            children: vec![srun_child(opts, &secret, &extra)],
            secret,
        });
    }
    let entries = host_entries(opts)?;
    if opts.runner == Runner::Local {
        if let Some(remote) = entries.iter().find(|e| !hosts::is_loopback_host(&e.host)) {
            return Err(LaunchError::RemoteHostWithoutRunner(remote.host.clone()));
        }
    }
    let assignment = hosts::assign_hosts(&entries, opts.localities);
    let agas = match std::env::var_os("HPX_AGAS").filter(|v| !v.is_empty()) {
        Some(user) => user,
        None => {
            let host0 = assignment
                .first()
                .map_or(hosts::DEFAULT_HOST, String::as_str);
            let port = pick_agas_port(host0).map_err(|source| LaunchError::AgasPort {
                host: host0.to_owned(),
                source,
            })?;
            hosts::format_host_port(host0, port).into()
        }
    };
    let job = JobContext { agas, extra };
    let children = if opts.runner == Runner::Ssh {
        let cwd = std::env::current_dir().map_err(LaunchError::CurrentDir)?;
        ssh_children(opts, &assignment, &job, &cwd)
    } else {
        local_children(opts, &assignment, &job)
    };
    Ok(LaunchPlan { children, secret })
}

/// Rejects option combinations that clap cannot rule out (or that a library caller built).
fn validate(opts: &Options) -> Result<(), LaunchError> {
    let invalid = |msg: &str| Err(LaunchError::InvalidOptions(msg.to_owned()));
    if opts.localities == 0 {
        return invalid("the number of localities must be at least 1");
    }
    if opts.threads == Some(0) {
        return invalid("the number of threads must be at least 1");
    }
    if opts.command.first().map_or(true, |p| p.is_empty()) {
        return invalid("no program given");
    }
    if !opts.hosts.is_empty() && opts.hostfile.is_some() {
        return invalid("--hosts and --hostfile cannot be combined");
    }
    if opts.runner == Runner::Srun && (!opts.hosts.is_empty() || opts.hostfile.is_some()) {
        return invalid(
            "`-r srun` places localities through Slurm; use srun/sbatch options instead of \
             --hosts or --hostfile",
        );
    }
    Ok(())
}

/// The host entries from `--hosts`, `--hostfile`, or the default loopback host.
fn host_entries(opts: &Options) -> Result<Vec<HostEntry>, LaunchError> {
    let entries = if let Some(path) = &opts.hostfile {
        let text = std::fs::read_to_string(path).map_err(|source| LaunchError::HostfileRead {
            path: path.clone(),
            source,
        })?;
        let entries = hosts::parse_hostfile(&text).map_err(|(line, message)| {
            LaunchError::HostfileSyntax {
                path: path.clone(),
                line,
                message,
            }
        })?;
        if entries.is_empty() {
            return Err(LaunchError::InvalidOptions(format!(
                "hostfile {} lists no hosts",
                path.display()
            )));
        }
        entries
    } else if opts.hosts.is_empty() {
        vec![HostEntry {
            host: hosts::DEFAULT_HOST.to_owned(),
            slots: 1,
        }]
    } else {
        hosts::parse_host_list(&opts.hosts).map_err(LaunchError::InvalidHost)?
    };
    Ok(entries)
}

/// The environment variables that are the same for every locality. The secret is not among
/// them: it travels over the child's channel (or, for `srun`, in its environment).
fn common_env(opts: &Options, extra: &[(OsString, OsString)]) -> Vec<(OsString, OsString)> {
    let mut env = vec![(
        "HPX_NUM_LOCALITIES".into(),
        opts.localities.to_string().into(),
    )];
    if let Some(threads) = opts.threads {
        env.push(("HPX_THREADS".into(), threads.to_string().into()));
    }
    if let Some(startup) = opts.startup_timeout {
        env.push(("HPX_STARTUP_TIMEOUT".into(), format_seconds(startup).into()));
    }
    env.extend(extra.iter().cloned());
    env
}

/// The full environment contract of locality `index` running on `host`.
fn locality_env(
    opts: &Options,
    index: usize,
    assignment: &[String],
    job: &JobContext,
) -> Vec<(OsString, OsString)> {
    let host = assignment[index].as_str();
    let on_host = assignment.iter().filter(|h| *h == host).count();
    let mut env = vec![
        ("HPX_LOCALITY".into(), index.to_string().into()),
        ("HPX_AGAS".into(), job.agas.clone()),
        ("HPX_HOST".into(), host.into()),
        ("HPX_LOCALITIES_ON_HOST".into(), on_host.to_string().into()),
        ("HPX_CONTROL_FD".into(), CONTROL_FD.to_string().into()),
    ];
    env.extend(common_env(opts, &job.extra));
    env
}

/// Prefix and name of locality `index`.
fn locality_labels(opts: &Options, index: usize) -> (String, String) {
    let prefix = if opts.no_prefix {
        String::new()
    } else {
        format!("[L{index}] ")
    };
    (format!("locality {index}"), prefix)
}

/// One local child per locality, running the program directly.
fn local_children(opts: &Options, assignment: &[String], job: &JobContext) -> Vec<ChildSpec> {
    let (program, args) = split_command(opts);
    (0..assignment.len())
        .map(|index| {
            let (name, prefix) = locality_labels(opts, index);
            ChildSpec {
                name,
                prefix,
                program: program.clone(),
                args: args.to_vec(),
                env: locality_env(opts, index, assignment, job),
                inherit_stdin: index == 0,
                control: Some(ControlVia::Descriptor),
            }
        })
        .collect()
}

/// One `ssh` child per locality; the environment travels inside the remote command line.
fn ssh_children(
    opts: &Options,
    assignment: &[String],
    job: &JobContext,
    cwd: &Path,
) -> Vec<ChildSpec> {
    assignment
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let (name, prefix) = locality_labels(opts, index);
            let env = locality_env(opts, index, assignment, job);
            ChildSpec {
                name,
                prefix,
                program: "ssh".into(),
                args: vec![
                    "-o".into(),
                    "BatchMode=yes".into(),
                    host.into(),
                    remote_command(cwd, &env, &opts.command),
                ],
                env: Vec::new(),
                inherit_stdin: false,
                control: Some(ControlVia::Stdin),
            }
        })
        .collect()
}

/// The single `srun -n N PROGRAM ARGS` child of a Slurm job.
fn srun_child(opts: &Options, secret: &str, extra: &[(OsString, OsString)]) -> ChildSpec {
    let mut args: Vec<OsString> = vec!["-n".into(), opts.localities.to_string().into()];
    args.extend(opts.command.iter().cloned());
    ChildSpec {
        name: "srun".to_owned(),
        prefix: if opts.no_prefix {
            String::new()
        } else {
            "[srun] ".to_owned()
        },
        program: "srun".into(),
        args,
        env: {
            let mut env = common_env(opts, extra);
            env.push(("HPX_SECRET".into(), secret.into()));
            env
        },
        inherit_stdin: true,
        control: None,
    }
}

/// The program and its arguments.
fn split_command(opts: &Options) -> (OsString, &[OsString]) {
    match opts.command.split_first() {
        Some((program, args)) => (program.clone(), args),
        None => (OsString::new(), &[]),
    }
}

/// `cd CWD && exec 3<&0 </dev/null && exec env K=V... PROGRAM ARGS`, every word
/// shell-quoted, for `ssh HOST CMD`: ssh's standard input (hpxrun's channel) becomes the
/// program's descriptor 3.
fn remote_command(cwd: &Path, env: &[(OsString, OsString)], command: &[OsString]) -> OsString {
    let mut words: Vec<OsString> = vec![
        format!("exec {CONTROL_FD}<&0 </dev/null &&").into(),
        "exec".into(),
        "env".into(),
    ];
    words.extend(env.iter().map(|(k, v)| {
        let mut pair = k.clone();
        pair.push("=");
        pair.push(v);
        shell_quote(&pair)
    }));
    words.extend(command.iter().map(|w| shell_quote(w)));
    let mut line = OsString::from("cd ");
    line.push(shell_quote(cwd.as_os_str()));
    line.push(" &&");
    for word in words {
        line.push(" ");
        line.push(word);
    }
    line
}

/// Quotes `word` for a POSIX shell: words made only of safe characters are left alone, others
/// are wrapped in single quotes with each `'` written as `'\''`. Works on raw bytes.
pub(crate) fn shell_quote(word: &OsStr) -> OsString {
    let bytes = word.as_bytes();
    let safe = |b: &u8| b.is_ascii_alphanumeric() || b"_-./,:@%+=".contains(b);
    if !bytes.is_empty() && bytes.iter().all(safe) {
        return word.to_owned();
    }
    let mut quoted = Vec::with_capacity(bytes.len() + 2);
    quoted.push(b'\'');
    for &b in bytes {
        if b == b'\'' {
            quoted.extend_from_slice(b"'\\''");
        } else {
            quoted.push(b);
        }
    }
    quoted.push(b'\'');
    OsString::from_vec(quoted)
}

/// Seconds as a plain decimal number (`2`, `0.5`).
pub(crate) fn format_seconds(duration: Duration) -> String {
    duration.as_secs_f64().to_string()
}

/// A fresh job secret: 32 random bytes as 64 lowercase hex characters.
pub(crate) fn generate_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let mut hex = String::with_capacity(64);
    for b in bytes {
        // Writing into a String cannot fail.
        let _ = write!(hex, "{b:02x}");
    }
    Ok(hex)
}

/// Picks a port that is currently free for UDP and TCP on `host` (see
/// [`hpx_parcelport::free_port`]); the check's socket is closed again
/// before the localities start.
///
/// A host that is not an address of this machine (a remote `ssh` host) cannot be bound here:
/// then the port is checked on the wildcard address, which is only a best guess for the remote
/// machine.
pub(crate) fn pick_agas_port(host: &str) -> std::io::Result<u16> {
    if let Ok(addrs) = (host, 0).to_socket_addrs() {
        for addr in addrs {
            if UdpSocket::bind(addr).is_ok() {
                return hpx_parcelport::free_port(addr.ip());
            }
        }
    }
    hpx_parcelport::free_port(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn opts(args: &[&str]) -> Options {
        Options::try_parse_from(std::iter::once("hpxrun").chain(args.iter().copied()))
            .expect("valid command line")
    }

    fn job() -> JobContext {
        JobContext {
            agas: "10.0.0.1:4000".into(),
            extra: Vec::new(),
        }
    }

    fn env_value<'a>(env: &'a [(OsString, OsString)], key: &str) -> Option<&'a str> {
        env.iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.to_str())
    }

    fn quote(s: &str) -> String {
        shell_quote(OsStr::new(s)).to_string_lossy().into_owned()
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(
            quote("plain-word_1.2/x:y@z%+=,"),
            "plain-word_1.2/x:y@z%+=,"
        );
        assert_eq!(quote(""), "''");
        assert_eq!(quote("two words"), "'two words'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$HOME;rm -rf /"), "'$HOME;rm -rf /'");
        assert_eq!(quote("a\nb"), "'a\nb'");
        assert_eq!(quote("~"), "'~'");
        assert_eq!(quote("*"), "'*'");
        let raw = OsStr::from_bytes(b"\xff'");
        assert_eq!(shell_quote(raw).as_bytes(), b"'\xff'\\'''");
    }

    #[test]
    fn shell_quoting_round_trips_through_sh() {
        let words = [
            "simple",
            "",
            "with space",
            "it's",
            "a\"b",
            "$x `y` \\z",
            "'",
            "--flag",
        ];
        let quoted: Vec<String> = words.iter().map(|w| quote(w)).collect();
        let script = format!(
            "for a in {}; do printf '<%s>' \"$a\"; done",
            quoted.join(" ")
        );
        let output = Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("sh runs");
        let expected: String = words.iter().map(|w| format!("<{w}>")).collect();
        assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
    }

    #[test]
    fn secret_is_64_lowercase_hex_and_fresh() {
        let a = generate_secret().expect("randomness");
        let b = generate_secret().expect("randomness");
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_ne!(a, b);
    }

    #[test]
    fn agas_port_is_free_loopback_port() {
        let port = pick_agas_port("127.0.0.1").expect("bind");
        assert_ne!(port, 0);
        assert_ne!(pick_agas_port("localhost").expect("bind"), 0);
    }

    #[test]
    fn seconds_formatting() {
        assert_eq!(format_seconds(Duration::from_secs(2)), "2");
        assert_eq!(format_seconds(Duration::from_millis(500)), "0.5");
    }

    #[test]
    fn local_children_carry_the_env_contract() {
        let o = opts(&[
            "-l",
            "3",
            "-t",
            "4",
            "--startup-timeout",
            "2.5",
            "prog",
            "--x",
        ]);
        let assignment = [
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            "127.0.0.1".to_owned(),
        ];
        let children = local_children(&o, &assignment, &job());
        assert_eq!(children.len(), 3);
        for (i, child) in children.iter().enumerate() {
            assert_eq!(child.name, format!("locality {i}"));
            assert_eq!(child.prefix, format!("[L{i}] "));
            assert_eq!(child.program, "prog");
            assert_eq!(child.args, ["--x"]);
            assert_eq!(child.inherit_stdin, i == 0);
            let i_text = i.to_string();
            assert_eq!(env_value(&child.env, "HPX_LOCALITY"), Some(i_text.as_str()));
            assert_eq!(env_value(&child.env, "HPX_NUM_LOCALITIES"), Some("3"));
            assert_eq!(env_value(&child.env, "HPX_AGAS"), Some("10.0.0.1:4000"));
            assert_eq!(
                env_value(&child.env, "HPX_HOST"),
                Some(assignment[i].as_str())
            );
            assert_eq!(
                env_value(&child.env, "HPX_SECRET"),
                None,
                "never in the environment"
            );
            assert_eq!(env_value(&child.env, "HPX_CONTROL_FD"), Some("3"));
            assert_eq!(child.control, Some(ControlVia::Descriptor));
            assert_eq!(env_value(&child.env, "HPX_THREADS"), Some("4"));
            assert_eq!(env_value(&child.env, "HPX_STARTUP_TIMEOUT"), Some("2.5"));
        }
        let command = children[1].to_command();
        assert_eq!(command.get_program(), "prog");
        assert_eq!(command.get_args().collect::<Vec<_>>(), ["--x"]);
        assert!(command
            .get_envs()
            .any(|(k, v)| k == "HPX_LOCALITY" && v == Some(OsStr::new("1"))));
    }

    #[test]
    fn optional_variables_are_omitted_and_prefix_can_be_disabled() {
        let o = opts(&["--no-prefix", "prog"]);
        let children = local_children(&o, &["127.0.0.1".to_owned()], &job());
        assert_eq!(children[0].prefix, "");
        assert_eq!(env_value(&children[0].env, "HPX_THREADS"), None);
        assert_eq!(env_value(&children[0].env, "HPX_STARTUP_TIMEOUT"), None);
    }

    #[test]
    fn ssh_command_construction() {
        let o = opts(&["-l", "2", "-r", "ssh", "-t", "2", "my prog", "it's", "--v"]);
        let assignment = ["node1".to_owned(), "node2".to_owned()];
        let children = ssh_children(&o, &assignment, &job(), Path::new("/home/u/my dir"));
        assert_eq!(children.len(), 2);
        let child = &children[1];
        assert_eq!(child.program, "ssh");
        assert!(child.env.is_empty());
        assert!(!child.inherit_stdin);
        assert_eq!(child.control, Some(ControlVia::Stdin));
        let args: Vec<String> = child
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let expected_remote =
            "cd '/home/u/my dir' && exec 3<&0 </dev/null && exec env HPX_LOCALITY=1 \
             HPX_AGAS=10.0.0.1:4000 HPX_HOST=node2 HPX_LOCALITIES_ON_HOST=1 HPX_CONTROL_FD=3 \
             HPX_NUM_LOCALITIES=2 HPX_THREADS=2 'my prog' 'it'\\''s' --v";
        assert!(!expected_remote.contains("HPX_SECRET"));
        assert_eq!(args, ["-o", "BatchMode=yes", "node2", expected_remote]);
    }

    #[test]
    fn ssh_remote_command_runs_under_sh() {
        let env = [("HPX_X".into(), "a b'c".into())];
        let command: Vec<OsString> = vec![
            "sh".into(),
            "-c".into(),
            "read l <&3; printf '%s|' \"$HPX_X\" \"$0\" \"$(pwd)\" \"$l\"; cat".into(),
            "zero arg".into(),
        ];
        let dir = std::env::temp_dir();
        let line = remote_command(&dir, &env, &command);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&line)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh runs");
        // What ssh would pass on: the channel, which must reach descriptor 3 and
        // not the program's standard input (`cat` must print nothing).
        std::io::Write::write_all(
            child.stdin.as_mut().expect("piped"),
            b"secret s3cr3t\nnot for stdin\n",
        )
        .expect("write");
        drop(child.stdin.take());
        let output = child.wait_with_output().expect("sh ends");
        let canonical = dir.canonicalize().expect("temp dir exists");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("a b'c|zero arg|{}|secret s3cr3t|", canonical.display())
        );
    }

    #[test]
    fn srun_command_construction() {
        let o = opts(&["-l", "8", "-r", "srun", "-t", "2", "prog", "-a"]);
        let child = srun_child(&o, "cd".repeat(32).as_str(), &[]);
        assert_eq!(child.name, "srun");
        assert_eq!(child.prefix, "[srun] ");
        assert_eq!(child.program, "srun");
        assert_eq!(child.args, ["-n", "8", "prog", "-a"]);
        assert_eq!(
            env_value(&child.env, "HPX_SECRET"),
            Some("cd".repeat(32).as_str())
        );
        assert_eq!(env_value(&child.env, "HPX_NUM_LOCALITIES"), Some("8"));
        assert_eq!(env_value(&child.env, "HPX_THREADS"), Some("2"));
        assert_eq!(env_value(&child.env, "HPX_LOCALITY"), None);
    }

    #[test]
    fn plan_for_local_runner() {
        let o = opts(&["-l", "2", "--hosts", "127.0.0.1,localhost", "prog"]);
        let plan = plan(&o).expect("valid plan");
        assert_eq!(plan.children.len(), 2);
        let hosts: Vec<_> = plan
            .children
            .iter()
            .filter_map(|c| env_value(&c.env, "HPX_HOST"))
            .collect();
        assert_eq!(hosts, ["127.0.0.1", "localhost"]);
        let agas = env_value(&plan.children[1].env, "HPX_AGAS").expect("HPX_AGAS set");
        if std::env::var_os("HPX_AGAS").is_none() {
            let port = agas.strip_prefix("127.0.0.1:").expect("host 0 address");
            assert!(port.parse::<u16>().is_ok_and(|p| p != 0));
        }
    }

    #[test]
    fn plan_rejects_remote_hosts_without_runner() {
        let o = opts(&["--hosts", "127.0.0.1,node7", "prog"]);
        let err = plan(&o).expect_err("remote host");
        assert!(matches!(&err, LaunchError::RemoteHostWithoutRunner(h) if h == "node7"));
        assert!(err.to_string().contains("-r ssh"));
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn plan_for_ssh_runner_uses_ssh() {
        let o = opts(&["-l", "3", "-r", "ssh", "--hosts", "127.0.0.1", "prog"]);
        let plan = plan(&o).expect("valid plan");
        assert_eq!(plan.children.len(), 3);
        assert!(plan.children.iter().all(|c| c.program == "ssh"));
    }

    #[test]
    fn plan_rejects_hosts_with_srun_and_bad_options() {
        let o = opts(&["-r", "srun", "--hosts", "a", "prog"]);
        assert!(matches!(plan(&o), Err(LaunchError::InvalidOptions(_))));
        let mut o = opts(&["prog"]);
        o.localities = 0;
        assert!(matches!(plan(&o), Err(LaunchError::InvalidOptions(_))));
        o.localities = 1;
        o.command.clear();
        assert!(matches!(plan(&o), Err(LaunchError::InvalidOptions(_))));
    }

    #[test]
    fn plan_reads_hostfiles() {
        let dir = std::env::temp_dir().join(format!("hpxrun-hostfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let good = dir.join("good");
        std::fs::write(&good, "# local\nlocalhost slots=2\n127.0.0.1\n").expect("write");
        let empty = dir.join("empty");
        std::fs::write(&empty, "# nothing\n").expect("write");
        let bad = dir.join("bad");
        std::fs::write(&bad, "localhost slots=two\n").expect("write");

        let o = opts(&[
            "-l",
            "4",
            "--hostfile",
            good.to_str().expect("utf-8"),
            "prog",
        ]);
        let plan_ok = plan(&o).expect("valid plan");
        let hosts: Vec<_> = plan_ok
            .children
            .iter()
            .filter_map(|c| env_value(&c.env, "HPX_HOST"))
            .collect();
        assert_eq!(hosts, ["localhost", "localhost", "127.0.0.1", "localhost"]);

        let o = opts(&["--hostfile", empty.to_str().expect("utf-8"), "prog"]);
        assert!(matches!(plan(&o), Err(LaunchError::InvalidOptions(_))));
        let o = opts(&["--hostfile", bad.to_str().expect("utf-8"), "prog"]);
        assert!(matches!(
            plan(&o),
            Err(LaunchError::HostfileSyntax { line: 1, .. })
        ));
        let o = opts(&[
            "--hostfile",
            dir.join("missing").to_str().expect("utf-8"),
            "prog",
        ]);
        assert!(matches!(plan(&o), Err(LaunchError::HostfileRead { .. })));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
