//! Egress rules for job containers, in two chains of our own hooked first into INPUT and FORWARD, plus one
//! MASQUERADE rule for the job subnet: a job may reach DNS, the host ports and private ranges explicitly
//! allowed, and the internet; the host's other ports and every other private range are refused. Every
//! job rule carries a comment naming its job, so a job's rules (and leftovers of a crashed daemon) are
//! found and removed by that tag. Changes go through `iptables-restore --noflush` in one batch.

use std::net::Ipv4Addr;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::Mutex;

use crate::config::Ipv4Net;

pub const CHAIN_INPUT: &str = "EPHEMERD-INPUT";
pub const CHAIN_FORWARD: &str = "EPHEMERD-FORWARD";
const TAG_PREFIX: &str = "ephemerd-job=";
const NAT_TAG: &str = "ephemerd-nat";

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
    /// Addresses the job must reach whatever they are, on the host or through it (its forge).
    pub endpoints: Vec<Ipv4Addr>,
}

pub fn tag(job_id: &str) -> String {
    format!("{TAG_PREFIX}{job_id}")
}

/// The rules for one job, as `-A chain ...` lines of the filter table (pure; tested below).
pub fn job_rules(job_id: &str, ip: Ipv4Addr, p: &Policy) -> Vec<String> {
    let src = format!("{ip}/32");
    let t = tag(job_id);
    let rule = |chain: &str, rest: &str| format!("-A {chain} -s {src} {rest} -m comment --comment {t}");
    let mut out = Vec::new();
    // To the host itself.
    for d in &p.dns {
        for proto in ["udp", "tcp"] {
            out.push(rule(CHAIN_INPUT, &format!("-d {d}/32 -p {proto} --dport 53 -j ACCEPT")));
        }
    }
    for port in &p.host_ports {
        out.push(rule(CHAIN_INPUT, &format!("-p tcp --dport {port} -j ACCEPT")));
    }
    for e in &p.endpoints {
        out.push(rule(CHAIN_INPUT, &format!("-d {e}/32 -j ACCEPT")));
    }
    out.push(rule(CHAIN_INPUT, "-p tcp -j REJECT --reject-with tcp-reset"));
    out.push(rule(CHAIN_INPUT, "-j REJECT --reject-with icmp-port-unreachable"));
    // Through the host.
    for d in &p.dns {
        for proto in ["udp", "tcp"] {
            out.push(rule(CHAIN_FORWARD, &format!("-d {d}/32 -p {proto} --dport 53 -j ACCEPT")));
        }
    }
    for a in &p.allow {
        out.push(rule(CHAIN_FORWARD, &format!("-d {a} -j ACCEPT")));
    }
    for e in &p.endpoints {
        out.push(rule(CHAIN_FORWARD, &format!("-d {e}/32 -j ACCEPT")));
    }
    for r in BLOCKED_RANGES {
        out.push(rule(CHAIN_FORWARD, &format!("-d {r} -p tcp -j REJECT --reject-with tcp-reset")));
        out.push(rule(CHAIN_FORWARD, &format!("-d {r} -j REJECT --reject-with icmp-net-prohibited")));
    }
    // Everything else out, and the answers back in (whatever the FORWARD policy).
    out.push(rule(CHAIN_FORWARD, "-j ACCEPT"));
    out.push(format!(
        "-A {CHAIN_FORWARD} -d {src} -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment {t} -j ACCEPT"
    ));
    out
}

/// The subnet-wide NAT rule (nat table, POSTROUTING).
pub fn nat_rule(subnet: Ipv4Net, bridge: &str) -> String {
    format!("-A POSTROUTING -s {subnet} ! -o {bridge} -m comment --comment {NAT_TAG} -j MASQUERADE")
}

/// Serialises rule changes; owns the chains, hooks and NAT rule while jobs run.
pub struct Firewall {
    lock: Mutex<()>,
    subnet: Ipv4Net,
    bridge: String,
}

impl Firewall {
    pub fn new(subnet: Ipv4Net, bridge: &str) -> Self {
        Self { lock: Mutex::new(()), subnet, bridge: bridge.to_string() }
    }

    /// Installs a job's rules. Chains, hooks (first in INPUT and FORWARD, checked every time so nothing
    /// else gets in front) and the NAT rule are added when missing.
    pub async fn add_job(&self, job_id: &str, ip: Ipv4Addr, p: &Policy) -> Result<(), FirewallError> {
        let _g = self.lock.lock().await;
        let filter = ipt(&["-S"]).await?;
        let lines: Vec<&str> = filter.lines().collect();
        let mut batch = vec!["*filter".to_string()];
        for (chain, hook) in [(CHAIN_INPUT, "INPUT"), (CHAIN_FORWARD, "FORWARD")] {
            if !lines.contains(&format!("-N {chain}").as_str()) {
                batch.push(format!(":{chain} - [0:0]"));
            }
            let jump = format!("-A {hook} -j {chain}");
            let first = lines.iter().find(|l| l.starts_with(&format!("-A {hook} ")));
            if first != Some(&jump.as_str()) {
                for _ in lines.iter().filter(|l| **l == jump) {
                    batch.push(format!("-D {hook} -j {chain}"));
                }
                batch.push(format!("-I {hook} 1 -j {chain}"));
            }
        }
        batch.extend(job_rules(job_id, ip, p));
        batch.push("COMMIT".into());
        let nat = ipt(&["-t", "nat", "-S", "POSTROUTING"]).await?;
        let masq = nat_rule(self.subnet, &self.bridge);
        if !nat.lines().any(|l| l == masq) {
            batch.extend(["*nat".to_string(), masq, "COMMIT".to_string()]);
        }
        restore(&batch).await
    }

    /// Removes every rule tagged with `job_id`. Idempotent.
    pub async fn remove_job(&self, job_id: &str) -> Result<(), FirewallError> {
        let _g = self.lock.lock().await;
        let t = tag(job_id);
        let filter = ipt(&["-S"]).await?;
        let dels: Vec<String> = filter
            .lines()
            .filter(|l| l.starts_with("-A ") && l.split_whitespace().any(|w| w.trim_matches('"') == t))
            .map(|l| format!("-D {}", &l[3..]))
            .collect();
        if dels.is_empty() {
            return Ok(());
        }
        let mut batch = vec!["*filter".to_string()];
        batch.extend(dels);
        batch.push("COMMIT".into());
        restore(&batch).await
    }

    /// Removes the chains, hooks and NAT rules when no job has rules left (any ephemerd's). Idempotent.
    pub async fn teardown_if_idle(&self) -> Result<(), FirewallError> {
        let _g = self.lock.lock().await;
        let filter = ipt(&["-S"]).await?;
        if filter.lines().any(|l| l.contains(TAG_PREFIX)) {
            return Ok(());
        }
        let mut batch = vec!["*filter".to_string()];
        for (chain, hook) in [(CHAIN_INPUT, "INPUT"), (CHAIN_FORWARD, "FORWARD")] {
            let jump = format!("-A {hook} -j {chain}");
            for _ in filter.lines().filter(|l| *l == jump) {
                batch.push(format!("-D {hook} -j {chain}"));
            }
            if filter.lines().any(|l| l == format!("-N {chain}")) {
                batch.push(format!("-F {chain}"));
                batch.push(format!("-X {chain}"));
            }
        }
        batch.push("COMMIT".into());
        let nat = ipt(&["-t", "nat", "-S", "POSTROUTING"]).await?;
        let masq: Vec<String> =
            nat.lines().filter(|l| l.contains(NAT_TAG)).map(|l| format!("-D {}", &l[3..])).collect();
        if !masq.is_empty() {
            batch.push("*nat".into());
            batch.extend(masq);
            batch.push("COMMIT".into());
        }
        if batch.len() > 2 { restore(&batch).await } else { Ok(()) }
    }

    /// Job ids that have rules installed (for reconciliation).
    pub async fn tagged_jobs(&self) -> Result<Vec<String>, FirewallError> {
        let mut ids: Vec<String> = Vec::new();
        for w in ipt(&["-S"]).await?.split_whitespace() {
            if let Some(id) = w.trim_matches('"').strip_prefix(TAG_PREFIX) {
                if !ids.iter().any(|x| x == id) {
                    ids.push(id.to_string());
                }
            }
        }
        Ok(ids)
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

/// Applies a batch atomically with `iptables-restore --noflush`.
async fn restore(batch: &[String]) -> Result<(), FirewallError> {
    let text = batch.join("\n") + "\n";
    let err = |message: String| FirewallError { args: "-restore --noflush".into(), message };
    let mut child = Command::new("iptables-restore")
        .arg("--noflush")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run iptables-restore: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).await.map_err(|e| err(e.to_string()))?;
    }
    let out = child.wait_with_output().await.map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        return Err(err(format!("{} (batch: {})", String::from_utf8_lossy(&out.stderr).trim(), batch.join("; "))));
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
            endpoints: vec![Ipv4Addr::new(172, 20, 0, 9)],
        };
        let rules = job_rules("j1", Ipv4Addr::new(10, 231, 0, 5), &p);
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
        assert!(rules.iter().all(|r| r.contains("10.231.0.5/32") && r.contains("--comment ephemerd-job=j1")));
        let forge = fwd.iter().position(|r| r.contains("-d 172.20.0.9/32 -j ACCEPT")).unwrap();
        assert!(
            forge < fwd.iter().position(|r| r.contains("-d 172.16.0.0/12")).unwrap(),
            "the forge before the blocks"
        );
        assert!(input.iter().position(|r| r.contains("-d 172.20.0.9/32 -j ACCEPT")).unwrap() < input.len() - 2);
        let accept_all = fwd.iter().position(|r| r.contains("-s 10.231.0.5/32 -j ACCEPT")).unwrap();
        assert!(accept_all > block10, "the catch-all accept comes after the blocks");
        let nat = nat_rule(Ipv4Net::parse("10.231.0.0/16").unwrap(), "ephemerd0");
        assert_eq!(
            nat,
            "-A POSTROUTING -s 10.231.0.0/16 ! -o ephemerd0 -m comment --comment ephemerd-nat -j MASQUERADE"
        );
    }
}
