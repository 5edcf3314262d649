//! Host lists: `--hosts`, `--hostfile` parsing, locality-to-host assignment and loopback checks.

use std::net::IpAddr;

/// A host together with the number of consecutive localities it takes per round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostEntry {
    /// Host name or address, without IPv6 brackets.
    pub(crate) host: String,
    /// Localities placed on this host per round-robin pass (at least 1).
    pub(crate) slots: usize,
}

/// The host used when neither `--hosts` nor `--hostfile` is given.
pub(crate) const DEFAULT_HOST: &str = "127.0.0.1";

/// Validates and normalises one host name: trims it, removes IPv6 brackets.
pub(crate) fn normalize_host(raw: &str) -> Result<String, String> {
    let host = raw.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err("empty host name".to_owned());
    }
    if host.starts_with('-') {
        return Err(format!(
            "invalid host name `{host}`: must not start with `-`"
        ));
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("invalid host name `{host}`: contains whitespace"));
    }
    Ok(host.to_owned())
}

/// Turns the values of `--hosts a,b,c` into entries with one slot each.
pub(crate) fn parse_host_list(hosts: &[String]) -> Result<Vec<HostEntry>, String> {
    hosts
        .iter()
        .map(|h| normalize_host(h).map(|host| HostEntry { host, slots: 1 }))
        .collect()
}

/// Parses the contents of a hostfile.
///
/// One host per line, optionally followed by `slots=K` (K >= 1). `#` starts a comment that
/// runs to the end of the line; blank lines are ignored. Errors name the 1-based line number.
pub(crate) fn parse_hostfile(text: &str) -> Result<Vec<HostEntry>, (usize, String)> {
    let mut entries = Vec::new();
    for (index, raw_line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw_line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else {
            continue;
        };
        let host = normalize_host(first).map_err(|e| (line_no, e))?;
        let mut slots = None;
        for word in words {
            let value = word
                .strip_prefix("slots=")
                .ok_or_else(|| (line_no, format!("unexpected `{word}` (expected `slots=K`)")))?;
            if slots.is_some() {
                return Err((line_no, "`slots=` given twice".to_owned()));
            }
            match value.parse::<usize>() {
                Ok(k) if k >= 1 => slots = Some(k),
                _ => {
                    return Err((
                        line_no,
                        format!("invalid slot count `{value}` (expected an integer >= 1)"),
                    ))
                }
            }
        }
        entries.push(HostEntry {
            host,
            slots: slots.unwrap_or(1),
        });
    }
    Ok(entries)
}

/// Assigns `count` localities to hosts: each host takes `slots` consecutive localities, hosts
/// are visited in order, and the list is cycled through as often as needed.
///
/// Returns the host of each locality; empty if `entries` is empty.
pub(crate) fn assign_hosts(entries: &[HostEntry], count: usize) -> Vec<String> {
    entries
        .iter()
        .flat_map(|e| std::iter::repeat(&e.host).take(e.slots))
        .cycle()
        .take(count)
        .cloned()
        .collect()
}

/// Whether `host` names this machine's loopback interface: `localhost`, `127.x.x.x` or `::1`.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip.to_canonical().is_loopback();
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    name.eq_ignore_ascii_case("localhost")
}

/// Formats `host:port`, bracketing IPv6 literals (`[::1]:7910`).
pub(crate) fn format_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(host: &str, slots: usize) -> HostEntry {
        HostEntry {
            host: host.to_owned(),
            slots,
        }
    }

    #[test]
    fn hostfile_with_comments_blank_lines_and_slots() {
        let text = "# cluster\n\nnode1\n  node2 slots=3   # big one\n\t\n[::1] slots=2\nnode4 #x\n";
        let hosts = parse_hostfile(text).expect("valid hostfile");
        assert_eq!(
            hosts,
            [
                entry("node1", 1),
                entry("node2", 3),
                entry("::1", 2),
                entry("node4", 1)
            ]
        );
    }

    #[test]
    fn hostfile_errors_name_the_line() {
        assert_eq!(parse_hostfile("a\nb slots=0\n").map_err(|e| e.0), Err(2));
        assert_eq!(parse_hostfile("a slots=x").map_err(|e| e.0), Err(1));
        assert_eq!(parse_hostfile("\n\na cpus=2").map_err(|e| e.0), Err(3));
        assert_eq!(parse_hostfile("a slots=1 slots=2").map_err(|e| e.0), Err(1));
        assert_eq!(parse_hostfile("-oProxyCommand=x").map_err(|e| e.0), Err(1));
    }

    #[test]
    fn empty_hostfile_has_no_hosts() {
        assert_eq!(parse_hostfile("# nothing\n\n"), Ok(Vec::new()));
    }

    #[test]
    fn host_list() {
        let hosts = parse_host_list(&["a".into(), " b ".into(), "[::1]".into()]).expect("valid");
        assert_eq!(hosts, [entry("a", 1), entry("b", 1), entry("::1", 1)]);
        assert!(parse_host_list(&["a".into(), String::new()]).is_err());
        assert!(parse_host_list(&["-x".into()]).is_err());
    }

    #[test]
    fn round_robin_assignment() {
        let hosts = [entry("a", 1), entry("b", 1), entry("c", 1)];
        assert_eq!(assign_hosts(&hosts, 2), ["a", "b"]);
        assert_eq!(assign_hosts(&hosts, 7), ["a", "b", "c", "a", "b", "c", "a"]);
    }

    #[test]
    fn slot_assignment_fills_hosts_in_order() {
        let hosts = [entry("a", 2), entry("b", 3)];
        assert_eq!(assign_hosts(&hosts, 4), ["a", "a", "b", "b"]);
        assert_eq!(
            assign_hosts(&hosts, 8),
            ["a", "a", "b", "b", "b", "a", "a", "b"]
        );
        assert!(assign_hosts(&[], 3).is_empty());
    }

    #[test]
    fn loopback_detection() {
        for host in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "localhost",
            "LocalHost",
            "localhost.",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_loopback_host(host), "{host} is loopback");
        }
        for host in [
            "10.0.0.1",
            "0.0.0.0",
            "::",
            "node1",
            "localhost.example.com",
            "128.0.0.1",
        ] {
            assert!(!is_loopback_host(host), "{host} is not loopback");
        }
    }

    #[test]
    fn host_port_formatting() {
        assert_eq!(format_host_port("127.0.0.1", 80), "127.0.0.1:80");
        assert_eq!(format_host_port("::1", 80), "[::1]:80");
        assert_eq!(format_host_port("node", 1), "node:1");
    }
}
