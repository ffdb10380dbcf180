//! Egress rules for job containers, in two chains of our own hooked first into INPUT and FORWARD: a job
//! may reach DNS, the host ports and private ranges explicitly allowed, and the internet; the host's other
//! ports and every other private range are refused. Every rule carries a comment naming its job, so a
//! job's rules (and leftovers of a crashed daemon) are found and removed by that tag.

use std::net::Ipv4Addr;

use tokio::process::Command;
use tokio::sync::Mutex;

use crate::config::Ipv4Net;

pub const CHAIN_INPUT: &str = "EPHEMERD-INPUT";
pub const CHAIN_FORWARD: &str = "EPHEMERD-FORWARD";
const TAG_PREFIX: &str = "ephemerd-job=";

/// Destinations no job may reach unless allowed: private, shared, link-local and multicast ranges.
pub const BLOCKED_RANGES: &[&str] =
    &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "224.0.0.0/4"];

#[derive(Debug, thiserror::Error)]
#[error("iptables {args}: {message}")]
pub struct FirewallError {
    pub args: String,
    pub message: String,
}

/// What a job may reach.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub dns: Vec<Ipv4Addr>,
    pub host_ports: Vec<u16>,
    pub allow: Vec<Ipv4Net>,
}

pub fn tag(job_id: &str) -> String {
    format!("{TAG_PREFIX}{job_id}")
}

/// The rules for one job, as iptables argument lists (pure; tested below).
pub fn job_rules(job_id: &str, ip: Ipv4Addr, p: &Policy) -> Vec<Vec<String>> {
    let src = format!("{ip}/32");
    let t = tag(job_id);
    let rule = |chain: &str, rest: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["-A".into(), chain.into(), "-s".into(), src.clone()];
        v.extend(rest.iter().map(|s| s.to_string()));
        v.extend(["-m", "comment", "--comment", &t].map(String::from));
        v
    };
    let mut out = Vec::new();
    // To the host itself.
    for d in &p.dns {
        let d = format!("{d}/32");
        for proto in ["udp", "tcp"] {
            out.push(rule(CHAIN_INPUT, &["-d", &d, "-p", proto, "--dport", "53", "-j", "ACCEPT"]));
        }
    }
    for port in &p.host_ports {
        out.push(rule(CHAIN_INPUT, &["-p", "tcp", "--dport", &port.to_string(), "-j", "ACCEPT"]));
    }
    out.push(rule(CHAIN_INPUT, &["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"]));
    out.push(rule(CHAIN_INPUT, &["-j", "REJECT", "--reject-with", "icmp-port-unreachable"]));
    // Through the host.
    for d in &p.dns {
        let d = format!("{d}/32");
        for proto in ["udp", "tcp"] {
            out.push(rule(CHAIN_FORWARD, &["-d", &d, "-p", proto, "--dport", "53", "-j", "ACCEPT"]));
        }
    }
    for a in &p.allow {
        out.push(rule(CHAIN_FORWARD, &["-d", &a.to_string(), "-j", "ACCEPT"]));
    }
    for r in BLOCKED_RANGES {
        out.push(rule(CHAIN_FORWARD, &["-d", r, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"]));
        out.push(rule(CHAIN_FORWARD, &["-d", r, "-j", "REJECT", "--reject-with", "icmp-net-prohibited"]));
    }
    out
}

/// Serialises rule changes (iptables has no transactions; `-w` only covers single calls).
pub struct Firewall {
    lock: Mutex<()>,
}

impl Default for Firewall {
    fn default() -> Self {
        Self::new()
    }
}

impl Firewall {
    pub fn new() -> Self {
        Self { lock: Mutex::new(()) }
    }

    /// Installs a job's rules (chains and hooks first); the hooks are moved to the top of INPUT and FORWARD
    /// so CNI's own accept rules cannot precede them.
    pub async fn add_job(&self, job_id: &str, ip: Ipv4Addr, p: &Policy) -> Result<(), FirewallError> {
        let _g = self.lock.lock().await;
        for (chain, hook) in [(CHAIN_INPUT, "INPUT"), (CHAIN_FORWARD, "FORWARD")] {
            if ipt(&["-N", chain]).await.is_err() {
                // Exists already: fine.
            }
            ensure_first(hook, chain).await?;
        }
        for r in job_rules(job_id, ip, p) {
            let args: Vec<&str> = r.iter().map(String::as_str).collect();
            ipt(&args).await?;
        }
        Ok(())
    }

    /// Removes every rule tagged with `job_id`; when our chains are then empty, removes them too.
    pub async fn remove_job(&self, job_id: &str) -> Result<(), FirewallError> {
        let _g = self.lock.lock().await;
        let t = tag(job_id);
        for chain in [CHAIN_INPUT, CHAIN_FORWARD] {
            for rule in list(chain).await {
                if rule.split_whitespace().any(|w| w.trim_matches('"') == t) {
                    delete_rule(&rule).await?;
                }
            }
        }
        remove_chains_if_empty().await
    }

    /// Job ids that have rules installed (for reconciliation).
    pub async fn tagged_jobs(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for chain in [CHAIN_INPUT, CHAIN_FORWARD] {
            for rule in list(chain).await {
                for w in rule.split_whitespace() {
                    if let Some(id) = w.trim_matches('"').strip_prefix(TAG_PREFIX) {
                        if !ids.iter().any(|x| x == id) {
                            ids.push(id.to_string());
                        }
                    }
                }
            }
        }
        ids
    }
}

async fn ipt(args: &[&str]) -> Result<String, FirewallError> {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .await
        .map_err(|e| FirewallError { args: args.join(" "), message: format!("cannot run iptables: {e}") })?;
    if !out.status.success() {
        return Err(FirewallError {
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `-A chain ...` lines of a chain; empty when the chain does not exist.
async fn list(chain: &str) -> Vec<String> {
    ipt(&["-S", chain])
        .await
        .map(|s| s.lines().filter(|l| l.starts_with("-A ")).map(String::from).collect())
        .unwrap_or_default()
}

async fn delete_rule(rule: &str) -> Result<(), FirewallError> {
    // `-S` prints rules as they are added; our tags hold no spaces, so splitting on whitespace is exact.
    let mut args: Vec<String> = rule.split_whitespace().map(|w| w.trim_matches('"').to_string()).collect();
    if let Some(first) = args.first_mut() {
        *first = "-D".into();
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match ipt(&a).await {
        Ok(_) => Ok(()),
        Err(e) if e.message.contains("does not exist") || e.message.contains("No chain") => Ok(()),
        Err(e) => Err(e),
    }
}

async fn ensure_first(hook: &str, chain: &str) -> Result<(), FirewallError> {
    let rules = list(hook).await;
    let jump = format!("-A {hook} -j {chain}");
    if rules.first().map(String::as_str) == Some(jump.as_str()) {
        return Ok(());
    }
    while ipt(&["-D", hook, "-j", chain]).await.is_ok() {}
    ipt(&["-I", hook, "1", "-j", chain]).await.map(drop)
}

async fn remove_chains_if_empty() -> Result<(), FirewallError> {
    if !list(CHAIN_INPUT).await.is_empty() || !list(CHAIN_FORWARD).await.is_empty() {
        return Ok(());
    }
    for (chain, hook) in [(CHAIN_INPUT, "INPUT"), (CHAIN_FORWARD, "FORWARD")] {
        while ipt(&["-D", hook, "-j", chain]).await.is_ok() {}
        let _ = ipt(&["-X", chain]).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_allow_dns_and_listed_ports_then_refuse() {
        let p = Policy {
            dns: vec![Ipv4Addr::new(10, 255, 255, 53)],
            host_ports: vec![8080],
            allow: vec![Ipv4Net::parse("192.168.7.0/24").unwrap()],
        };
        let rules: Vec<String> =
            job_rules("j1", Ipv4Addr::new(10, 231, 0, 5), &p).iter().map(|r| r.join(" ")).collect();
        let input: Vec<&String> = rules.iter().filter(|r| r.starts_with("-A EPHEMERD-INPUT")).collect();
        assert!(input[0].contains("-d 10.255.255.53/32 -p udp --dport 53 -j ACCEPT"));
        assert!(input[2].contains("-p tcp --dport 8080 -j ACCEPT"));
        assert!(input.last().unwrap().contains("-j REJECT"));
        let fwd: Vec<&String> = rules.iter().filter(|r| r.starts_with("-A EPHEMERD-FORWARD")).collect();
        let allow = fwd.iter().position(|r| r.contains("192.168.7.0/24 -j ACCEPT")).unwrap();
        let block = fwd.iter().position(|r| r.contains("192.168.0.0/16")).unwrap();
        let dns = fwd.iter().position(|r| r.contains("10.255.255.53/32")).unwrap();
        let block10 = fwd.iter().position(|r| r.contains("-d 10.0.0.0/8")).unwrap();
        assert!(allow < block && dns < block10, "accepts precede the blocks");
        assert!(rules.iter().all(|r| r.contains("-s 10.231.0.5/32") && r.ends_with("--comment ephemerd-job=j1")));
    }
}
