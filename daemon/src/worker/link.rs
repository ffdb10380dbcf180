//! The link between this machine and a worker, as host objects of one instance: for a namespace worker a
//! named network namespace (`/run/netns/ephemerd-<id>-worker`) and a veth pair (`edw<id>` here, `eth0`
//! in the worker), for a VM a tap device (`edw<id>`, which QEMU opens) on a /30, and iptables rules tagged `ephemerd-<id>-worker`: NAT for the worker's traffic out,
//! forwarding to and from it, and on INPUT from the veth only answers, DNS and the ports
//! `network.allow_host_ports` names (so a job in the worker reaches no other service of this machine,
//! even through the worker's NAT). Everything is made again at each boot and found again by its name or
//! tag after a crash; nothing of another instance is touched.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use tokio::process::Command;

use crate::config::Ipv4Net;
use crate::runtime::instance::Instance;
use crate::runtime::network::firewall::{has_tag, ipt, restore};

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("ip {args}: {message}")]
    Ip { args: String, message: String },
    #[error(transparent)]
    Firewall(#[from] crate::runtime::network::firewall::FirewallError),
    #[error("worker.link {link} is in use on this machine ({by}): set [worker] link to a free /30")]
    InUse { link: Ipv4Net, by: String },
}

/// The names and addresses of one instance's worker link.
#[derive(Debug, Clone)]
pub struct Link {
    /// A tap device for a VM instead of a veth pair into a namespace.
    pub tap: bool,
    pub netns: String,
    pub host_if: String,
    pub net: Ipv4Net,
    tag: String,
}

impl Link {
    pub fn new(instance: &Instance, net: Ipv4Net) -> Self {
        Self {
            tap: false,
            netns: format!("ephemerd-{}-worker", instance.id()),
            host_if: format!("edw{}", instance.id()),
            net,
            tag: format!("ephemerd-{}-worker", instance.id()),
        }
    }

    /// The link of a VM: a tap device, no namespace.
    pub fn tap(instance: &Instance, net: Ipv4Net) -> Self {
        Self { tap: true, ..Self::new(instance, net) }
    }

    /// The default /30 of an instance: one of 10.230.0.0/16, by its id.
    pub fn default_net(instance: &Instance) -> Ipv4Net {
        let slot = u32::from_str_radix(instance.id(), 16).unwrap_or(0) % (1 << 14);
        let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 230, 0, 0)) + slot * 4);
        Ipv4Net { addr, prefix: 30 }
    }

    /// This machine's end of the link.
    pub fn host_ip(&self) -> Ipv4Addr {
        self.net.gateway()
    }

    /// The worker's end.
    pub fn worker_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net.addr) + 2)
    }

    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.netns)
    }

    /// The rules, as `iptables-restore` lines per table (pure; tested below).
    pub fn rules(&self, dns: &[Ipv4Addr], host_ports: &[u16]) -> (Vec<String>, Vec<String>) {
        let (i, t, net) = (&self.host_if, &self.tag, self.net);
        // The comment goes before the target, as `iptables -S` prints it.
        let c = |s: String| match s.split_once(" -j ") {
            Some((m, j)) => format!("{m} -m comment --comment {t} -j {j}"),
            None => format!("{s} -m comment --comment {t}"),
        };
        let mut filter = vec![
            c(format!("-I FORWARD 1 -i {i} -j ACCEPT")),
            c(format!("-I FORWARD 1 -o {i} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")),
            c(format!("-I INPUT 1 -i {i} -j REJECT --reject-with icmp-port-unreachable")),
            c(format!("-I INPUT 1 -i {i} -p tcp -j REJECT --reject-with tcp-reset")),
        ];
        for p in host_ports {
            filter.push(c(format!("-I INPUT 1 -i {i} -p tcp --dport {p} -j ACCEPT")));
        }
        for d in dns {
            for proto in ["udp", "tcp"] {
                filter.push(c(format!("-I INPUT 1 -i {i} -d {d}/32 -p {proto} --dport 53 -j ACCEPT")));
            }
        }
        filter.push(c(format!("-I INPUT 1 -i {i} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")));
        let nat = vec![c(format!("-A POSTROUTING -s {net} ! -o {i} -j MASQUERADE"))];
        (filter, nat)
    }

    /// Makes the namespace, the veth pair and the rules, after removing what a previous boot left.
    pub async fn up(&self, dns: &[Ipv4Addr], host_ports: &[u16]) -> Result<(), LinkError> {
        self.down().await?;
        if let Some(by) = address_in_use(self.net).await {
            return Err(LinkError::InUse { link: self.net, by });
        }
        let (h, w, n) = (self.host_if.as_str(), format!("{}p", self.host_if), self.netns.as_str());
        let host_cidr = format!("{}/30", self.host_ip());
        let gw = self.host_ip().to_string();
        if self.tap {
            ip(&["tuntap", "add", "dev", h, "mode", "tap"]).await?;
        } else {
            ip(&["netns", "add", n]).await?;
            ip(&["link", "add", h, "type", "veth", "peer", "name", &w, "netns", n]).await?;
        }
        ip(&["addr", "add", &host_cidr, "dev", h]).await?;
        ip(&["link", "set", h, "up"]).await?;
        if !self.tap {
            self.up_inside(&w, &gw).await?;
        }
        if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
            tracing::warn!(error = %e, "cannot turn on IPv4 forwarding: the worker may not reach out");
        }
        let (filter, nat) = self.rules(dns, host_ports);
        let mut batch = vec!["*filter".to_string()];
        batch.extend(filter);
        batch.extend(["COMMIT".to_string(), "*nat".to_string()]);
        batch.extend(nat);
        batch.push("COMMIT".into());
        restore(&batch).await?;
        Ok(())
    }

    /// The namespace's end: `eth0` with the worker's address, `lo`, the default route.
    async fn up_inside(&self, peer: &str, gw: &str) -> Result<(), LinkError> {
        let n = self.netns.as_str();
        let worker_cidr = format!("{}/30", self.worker_ip());
        ip(&["-n", n, "link", "set", peer, "name", "eth0"]).await?;
        ip(&["-n", n, "addr", "add", &worker_cidr, "dev", "eth0"]).await?;
        ip(&["-n", n, "link", "set", "eth0", "up"]).await?;
        ip(&["-n", n, "link", "set", "lo", "up"]).await?;
        ip(&["-n", n, "route", "add", "default", "via", gw]).await?;
        Ok(())
    }

    /// Removes the rules, the veth pair and the namespace (with everything still in it). Idempotent.
    pub async fn down(&self) -> Result<(), LinkError> {
        let mut batch = Vec::new();
        for table in ["filter", "nat"] {
            let dels: Vec<String> = ipt(&["-t", table, "-S"])
                .await?
                .lines()
                .filter(|l| l.starts_with("-A ") && has_tag(l, &self.tag))
                .map(|l| format!("-D {}", &l[3..]))
                .collect();
            if !dels.is_empty() {
                batch.push(format!("*{table}"));
                batch.extend(dels);
                batch.push("COMMIT".into());
            }
        }
        if !batch.is_empty() {
            restore(&batch).await?;
        }
        if link_exists(&self.host_if).await {
            ip(&["link", "del", &self.host_if]).await?;
        }
        if self.netns_path().exists() {
            ip(&["netns", "del", &self.netns]).await?;
        }
        Ok(())
    }

    /// Whether any of the link's objects is there.
    pub async fn present(&self) -> bool {
        self.netns_path().exists() || link_exists(&self.host_if).await
    }
}

async fn ip(args: &[&str]) -> Result<(), LinkError> {
    let err = |message: String| LinkError::Ip { args: args.join(" "), message };
    let out = Command::new("ip").args(args).output().await.map_err(|e| err(format!("cannot run ip: {e}")))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(())
}

async fn link_exists(name: &str) -> bool {
    Command::new("ip").args(["link", "show", "dev", name]).output().await.is_ok_and(|o| o.status.success())
}

/// The interface of this machine that has an address in `net`, if one has.
async fn address_in_use(net: Ipv4Net) -> Option<String> {
    let out = Command::new("ip").args(["-o", "-4", "addr", "show"]).output().await.ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let mut w = l.split_whitespace();
        let dev = w.nth(1)?.to_string();
        let addr = w.skip_while(|x| *x != "inet").nth(1)?;
        let a = Ipv4Net::parse(addr).ok()?;
        (a.overlaps(&net)).then_some(dev)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        Link::new(
            &Instance::at(std::path::Path::new("/var/lib/ephemerd-link-test")),
            Ipv4Net::parse("10.230.7.0/30").unwrap(),
        )
    }

    #[test]
    fn the_link_names_its_instance_and_fits_interface_names() {
        let l = link();
        let id = Instance::at(std::path::Path::new("/var/lib/ephemerd-link-test")).id().to_string();
        assert_eq!(l.netns, format!("ephemerd-{id}-worker"));
        assert!(l.host_if.len() <= 15 && l.host_if.ends_with(&id));
        assert_eq!((l.host_ip(), l.worker_ip()), (Ipv4Addr::new(10, 230, 7, 1), Ipv4Addr::new(10, 230, 7, 2)));
        let d = Link::default_net(&Instance::at(std::path::Path::new("/x")));
        assert_eq!(d.prefix, 30);
        assert!(Ipv4Net::parse("10.230.0.0/16").unwrap().contains(d.addr) && u32::from(d.addr) % 4 == 0);
    }

    #[test]
    fn from_the_worker_this_machine_answers_only_dns_and_the_allowed_ports() {
        let l = link();
        let (filter, nat) = l.rules(&[Ipv4Addr::new(10, 255, 255, 53)], &[8080]);
        let i = &l.host_if;
        // Inserted at 1 one after the other: the last line is the first rule.
        let order: Vec<&String> = filter.iter().filter(|r| r.contains("INPUT")).rev().collect();
        let t = &l.tag;
        assert!(order[0].contains("RELATED,ESTABLISHED -m comment"), "{order:#?}");
        assert!(
            order
                .iter()
                .any(|r| r
                    .contains(&format!("-d 10.255.255.53/32 -p udp --dport 53 -m comment --comment {t} -j ACCEPT")))
        );
        assert!(
            order.iter().any(|r| r.contains(&format!("-i {i} -p tcp --dport 8080 -m comment --comment {t} -j ACCEPT")))
        );
        let last = format!("-m comment --comment {} -j REJECT --reject-with icmp-port-unreachable", l.tag);
        assert!(order[order.len() - 1].ends_with(&last), "{order:#?}");
        assert!(filter.iter().all(|r| r.contains(&format!("-i {i} ")) || r.contains(&format!("-o {i} "))));
        assert!(filter.iter().chain(&nat).all(|r| r.contains(&format!("--comment {} -j ", l.tag))));
        assert_eq!(
            nat,
            [format!("-A POSTROUTING -s 10.230.7.0/30 ! -o {i} -m comment --comment {} -j MASQUERADE", l.tag)]
        );
    }
}
