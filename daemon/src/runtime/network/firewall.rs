//! Egress rules for job containers, in two chains of the instance's own hooked first into INPUT and FORWARD,
//! plus one MASQUERADE rule for its job subnet: a job may reach DNS, the host ports and private ranges
//! explicitly allowed, and the internet; the host's other ports, its peers and every other private range are
//! refused. Every job rule carries a comment naming the instance and the job, so a job's rules (and
//! leftovers of a crashed daemon) are found and removed by that tag, and never another instance's.
//! Changes go through `iptables-restore --noflush` in one batch. IPv4 only: jobs have no IPv6 (see
//! `netns::job_sysctls`).

use std::net::Ipv4Addr;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::Mutex;

use crate::config::Ipv4Net;
use crate::runtime::instance::Instance;

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

/// The rules for one job, as `-A chain ...` lines of the filter table (pure; tested below).
pub fn job_rules(inst: &Instance, subnet: Ipv4Net, job_id: &str, ip: Ipv4Addr, p: &Policy) -> Vec<String> {
    let src = format!("{ip}/32");
    let t = inst.job_tag(job_id);
    let (chain_input, chain_forward) = (inst.chain_input(), inst.chain_forward());
    let (chain_input, chain_forward) = (chain_input.as_str(), chain_forward.as_str());
    let rule = |chain: &str, rest: &str| format!("-A {chain} -s {src} {rest} -m comment --comment {t}");
    let mut out = Vec::new();
    // To the host itself: answers to what the host opened, then what the policy allows.
    out.push(rule(chain_input, "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"));
    for d in &p.dns {
        for proto in ["udp", "tcp"] {
            out.push(rule(chain_input, &format!("-d {d}/32 -p {proto} --dport 53 -j ACCEPT")));
        }
    }
    for port in &p.host_ports {
        out.push(rule(chain_input, &format!("-p tcp --dport {port} -j ACCEPT")));
    }
    for e in &p.endpoints {
        out.push(rule(chain_input, &format!("-d {e}/32 -j ACCEPT")));
    }
    out.push(rule(chain_input, "-p tcp -j REJECT --reject-with tcp-reset"));
    out.push(rule(chain_input, "-j REJECT --reject-with icmp-port-unreachable"));
    // Through the host. Never to a peer, whatever the allow list says: routed through the gateway, or
    // bridged when br_netfilter shows bridged frames to iptables (the bridge ports are isolated anyway).
    out.push(rule(chain_forward, &format!("-d {subnet} -p tcp -j REJECT --reject-with tcp-reset")));
    out.push(rule(chain_forward, &format!("-d {subnet} -j REJECT --reject-with icmp-net-prohibited")));
    for d in &p.dns {
        for proto in ["udp", "tcp"] {
            out.push(rule(chain_forward, &format!("-d {d}/32 -p {proto} --dport 53 -j ACCEPT")));
        }
    }
    for a in &p.allow {
        out.push(rule(chain_forward, &format!("-d {a} -j ACCEPT")));
    }
    for e in &p.endpoints {
        out.push(rule(chain_forward, &format!("-d {e}/32 -j ACCEPT")));
    }
    for r in BLOCKED_RANGES {
        out.push(rule(chain_forward, &format!("-d {r} -p tcp -j REJECT --reject-with tcp-reset")));
        out.push(rule(chain_forward, &format!("-d {r} -j REJECT --reject-with icmp-net-prohibited")));
    }
    // Everything else out, and the answers back in (whatever the FORWARD policy).
    out.push(rule(chain_forward, "-j ACCEPT"));
    out.push(format!(
        "-A {chain_forward} -d {src} -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment {t} -j ACCEPT"
    ));
    out
}

/// The subnet-wide NAT rule (nat table, POSTROUTING).
pub fn nat_rule(inst: &Instance, subnet: Ipv4Net, bridge: &str) -> String {
    format!("-A POSTROUTING -s {subnet} ! -o {bridge} -m comment --comment {} -j MASQUERADE", inst.nat_tag())
}

/// Whether `line` (of `iptables -S`) carries exactly `tag` as a word.
pub(crate) fn has_tag(line: &str, tag: &str) -> bool {
    line.split_whitespace().any(|w| w.trim_matches('"') == tag)
}

/// Serialises this process's rule changes; owns the instance's chains, hooks and NAT rule while its jobs run.
pub struct Firewall {
    lock: Mutex<()>,
    instance: Instance,
    subnet: Ipv4Net,
    bridge: String,
}

impl Firewall {
    pub fn new(instance: Instance, subnet: Ipv4Net, bridge: &str) -> Self {
        Self { lock: Mutex::new(()), instance, subnet, bridge: bridge.to_string() }
    }

    fn chains(&self) -> [(String, &'static str); 2] {
        [(self.instance.chain_input(), "INPUT"), (self.instance.chain_forward(), "FORWARD")]
    }

    /// Installs a job's rules. Chains, hooks (first in INPUT and FORWARD, checked every time so nothing
    /// else gets in front) and the NAT rule are added when missing.
    pub async fn add_job(&self, job_id: &str, ip: Ipv4Addr, p: &Policy) -> Result<(), FirewallError> {
        let _g = self.lock.lock().await;
        let filter = ipt(&["-S"]).await?;
        let lines: Vec<&str> = filter.lines().collect();
        let mut batch = vec!["*filter".to_string()];
        for (chain, hook) in self.chains() {
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
        batch.extend(job_rules(&self.instance, self.subnet, job_id, ip, p));
        batch.push("COMMIT".into());
        let nat = ipt(&["-t", "nat", "-S", "POSTROUTING"]).await?;
        let masq = nat_rule(&self.instance, self.subnet, &self.bridge);
        if !nat.lines().any(|l| l == masq) {
            batch.extend(["*nat".to_string(), masq, "COMMIT".to_string()]);
        }
        restore(&batch).await
    }

    /// Removes every rule tagged with `job_id`. Idempotent.
    pub async fn remove_job(&self, job_id: &str) -> Result<(), FirewallError> {
        let _g = self.lock.lock().await;
        let t = self.instance.job_tag(job_id);
        let filter = ipt(&["-S"]).await?;
        let dels: Vec<String> = filter
            .lines()
            .filter(|l| l.starts_with("-A ") && has_tag(l, &t))
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

    /// Removes the instance's chains, hooks and NAT rule when none of its jobs has rules left. Another
    /// instance's are not looked at. Idempotent.
    pub async fn teardown_if_idle(&self) -> Result<(), FirewallError> {
        let _g = self.lock.lock().await;
        let filter = ipt(&["-S"]).await?;
        let prefix = self.instance.tag_prefix();
        if filter.lines().any(|l| l.contains(&prefix)) {
            return Ok(());
        }
        let mut batch = vec!["*filter".to_string()];
        for (chain, hook) in self.chains() {
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
        let nat_tag = self.instance.nat_tag();
        let masq: Vec<String> = nat
            .lines()
            .filter(|l| l.starts_with("-A ") && has_tag(l, &nat_tag))
            .map(|l| format!("-D {}", &l[3..]))
            .collect();
        if !masq.is_empty() {
            batch.push("*nat".into());
            batch.extend(masq);
            batch.push("COMMIT".into());
        }
        if batch.len() > 2 { restore(&batch).await } else { Ok(()) }
    }

    /// Ids of this instance's jobs that have rules installed (for reconciliation).
    pub async fn tagged_jobs(&self) -> Result<Vec<String>, FirewallError> {
        let prefix = self.instance.tag_prefix();
        let mut ids: Vec<String> = Vec::new();
        for w in ipt(&["-S"]).await?.split_whitespace() {
            if let Some(id) = w.trim_matches('"').strip_prefix(&prefix)
                && !ids.iter().any(|x| x == id)
            {
                ids.push(id.to_string());
            }
        }
        Ok(ids)
    }
}

pub(crate) async fn ipt(args: &[&str]) -> Result<String, FirewallError> {
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
pub(crate) async fn restore(batch: &[String]) -> Result<(), FirewallError> {
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
        let inst = Instance::at(std::path::Path::new("/var/lib/ephemerd"));
        let subnet = Ipv4Net::parse("10.231.0.0/16").unwrap();
        let rules = job_rules(&inst, subnet, "j1", Ipv4Addr::new(10, 231, 0, 5), &p);
        let input: Vec<&String> =
            rules.iter().filter(|r| r.starts_with(&format!("-A {} ", inst.chain_input()))).collect();
        assert!(input[0].contains("--ctstate RELATED,ESTABLISHED -j ACCEPT"));
        assert!(input[1].contains("-d 10.255.255.53/32 -p udp --dport 53 -j ACCEPT"));
        assert!(input[3].contains("-p tcp --dport 8080 -j ACCEPT"));
        assert!(input.last().unwrap().contains("-j REJECT"));
        let fwd: Vec<&String> =
            rules.iter().filter(|r| r.starts_with(&format!("-A {} ", inst.chain_forward()))).collect();
        assert_eq!(input.len() + fwd.len(), rules.len());
        assert!(fwd[0].contains("-d 10.231.0.0/16 -p tcp -j REJECT"), "peers first: {}", fwd[0]);
        assert!(fwd[1].contains("-d 10.231.0.0/16 -j REJECT"), "peers first: {}", fwd[1]);
        let allow = fwd.iter().position(|r| r.contains("192.168.7.0/24 -j ACCEPT")).unwrap();
        let block = fwd.iter().position(|r| r.contains("192.168.0.0/16")).unwrap();
        let dns = fwd.iter().position(|r| r.contains("10.255.255.53/32")).unwrap();
        let block10 = fwd.iter().position(|r| r.contains("-d 10.0.0.0/8")).unwrap();
        assert!(allow < block && dns < block10, "accepts precede the blocks");
        let tag = format!("--comment {}", inst.job_tag("j1"));
        assert!(rules.iter().all(|r| r.contains("10.231.0.5/32") && r.contains(&tag)));
        let forge = fwd.iter().position(|r| r.contains("-d 172.20.0.9/32 -j ACCEPT")).unwrap();
        assert!(
            forge < fwd.iter().position(|r| r.contains("-d 172.16.0.0/12")).unwrap(),
            "the forge before the blocks"
        );
        assert!(input.iter().position(|r| r.contains("-d 172.20.0.9/32 -j ACCEPT")).unwrap() < input.len() - 2);
        let accept_all = fwd.iter().position(|r| r.contains("-s 10.231.0.5/32 -j ACCEPT")).unwrap();
        assert!(accept_all > block10, "the catch-all accept comes after the blocks");
        let nat = nat_rule(&inst, subnet, "ephemerd0");
        assert_eq!(
            nat,
            format!(
                "-A POSTROUTING -s 10.231.0.0/16 ! -o ephemerd0 -m comment --comment ephemerd-{}-nat -j MASQUERADE",
                inst.id()
            )
        );
        assert!(has_tag(&nat, &inst.nat_tag()));
        assert!(!has_tag(&nat, &Instance::at(std::path::Path::new("/other")).nat_tag()));
    }
}
