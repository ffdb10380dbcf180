//! A job's network: its own namespace, a CNI bridge attachment with NAT, the egress firewall, and the
//! `/etc/resolv.conf` and `/etc/hosts` it sees.

pub mod bridge;
pub mod cni;
pub mod firewall;
pub mod netns;

use std::net::Ipv4Addr;

/// DNS servers for jobs: the configured ones, else the host's non-loopback resolvers (systemd-resolved's
/// upstream list when the host points at its local stub).
pub fn resolvers(configured: &[Ipv4Addr]) -> Vec<Ipv4Addr> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    for f in ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"] {
        let found = parse_nameservers(&std::fs::read_to_string(f).unwrap_or_default());
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

/// Non-loopback IPv4 nameservers of a resolv.conf.
pub fn parse_nameservers(text: &str) -> Vec<Ipv4Addr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
        .filter(|ip| !ip.is_loopback())
        .collect()
}

/// The search domains of the host's resolv.conf.
pub fn host_search_domains() -> Vec<String> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("search"))
        .flat_map(|s| s.split_whitespace().map(String::from).collect::<Vec<_>>())
        .collect()
}

pub fn render_resolv_conf(dns: &[Ipv4Addr], search: &[String]) -> String {
    let mut s = String::from("# written by ephemerd for this job\n");
    for d in dns {
        s.push_str(&format!("nameserver {d}\n"));
    }
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    s
}

pub fn render_hosts(hostname: &str, ip: Option<Ipv4Addr>) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    match ip {
        Some(ip) => s.push_str(&format!("{ip}\t{hostname}\n")),
        None => s.push_str(&format!("127.0.1.1\t{hostname}\n")),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolvers_are_skipped() {
        let r = parse_nameservers("nameserver 127.0.0.53\nnameserver 10.255.255.53\n# x\nnameserver ::1\n");
        assert_eq!(r, vec![Ipv4Addr::new(10, 255, 255, 53)]);
        assert_eq!(resolvers(&[Ipv4Addr::new(9, 9, 9, 9)]), vec![Ipv4Addr::new(9, 9, 9, 9)]);
        let rc = render_resolv_conf(&r, &["corp.example".into()]);
        assert!(rc.contains("nameserver 10.255.255.53\n") && rc.contains("search corp.example\n"));
        assert!(render_hosts("job", Some(Ipv4Addr::new(10, 231, 0, 2))).contains("10.231.0.2\tjob\n"));
    }
}
