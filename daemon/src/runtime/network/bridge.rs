//! The job bridge as a host object of one instance: made here with an alias naming the instance and data
//! dir (CNI's bridge plugin then gives it the gateway address and brings it up). A bridge or a subnet
//! another instance (or anything else on the host) already uses is refused, and the bridge is deleted
//! once the instance has no job on it. The kernel's interface alias is the record, so a crashed
//! instance's bridge still says whose it is. Everything goes through `ip` (netlink): `/sys` may show
//! another network namespace.

use std::net::Ipv4Addr;

use crate::config::Ipv4Net;
use crate::runtime::instance::Instance;

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(
        "bridge {bridge} belongs to {owner}; give this instance its own network.bridge and network.subnet, or run `ephemerd cleanup` with that instance's data dir"
    )]
    Taken { bridge: String, owner: String },
    #[error(
        "the job subnet {subnet} overlaps {address} on {interface}; set network.subnet to a free private range (and network.bridge, if another ephemerd uses it)"
    )]
    SubnetInUse { subnet: Ipv4Net, address: String, interface: String },
    #[error("bridge {bridge}: {message}")]
    Io { bridge: String, message: String },
}

/// Where the bridge stands for this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Not there yet: [`Bridge::claim`] makes it with the first job.
    Absent,
    Ours,
    /// Unowned and empty, or left by an instance that is gone: the next job takes it over.
    TakeOver,
}

/// One instance's view of its bridge.
pub struct Bridge {
    name: String,
    subnet: Ipv4Net,
    instance: Instance,
    claiming: std::sync::Mutex<()>,
}

impl Bridge {
    pub fn new(name: &str, subnet: Ipv4Net, instance: Instance) -> Self {
        Self { name: name.to_string(), subnet, instance, claiming: std::sync::Mutex::new(()) }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip <args>`; its stdout, or what it said went wrong.
    fn ip(&self, args: &[&str]) -> Result<Vec<u8>, BridgeError> {
        let io = |message: String| BridgeError::Io { bridge: self.name.clone(), message };
        let out =
            std::process::Command::new("ip").args(args).output().map_err(|e| io(format!("cannot run ip: {e}")))?;
        if !out.status.success() {
            return Err(io(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())));
        }
        Ok(out.stdout)
    }

    /// `ip -j link show <args>`, or `None` when there is no such link.
    fn links(&self, args: &[&str]) -> Option<Vec<serde_json::Value>> {
        let out = self.ip(&[&["-j", "link", "show"], args].concat()).ok()?;
        serde_json::from_slice(&out).ok()
    }

    /// The bridge's alias ("" when it has none), or `None` when there is no such interface.
    fn alias(&self) -> Option<String> {
        let links = self.links(&["dev", &self.name])?;
        let l = links.first()?;
        Some(l["ifalias"].as_str().unwrap_or_default().trim().to_string())
    }

    fn ports(&self) -> Vec<String> {
        self.links(&["master", &self.name])
            .unwrap_or_default()
            .iter()
            .filter_map(|l| l["ifname"].as_str().map(String::from))
            .collect()
    }

    /// Makes sure a job may be attached: the bridge is absent (the bridge plugin makes it), ours, or one
    /// with no ports whose owner is gone (no ephemerd holds its data dir), which is taken over; and no other
    /// interface holds an address in our subnet.
    pub fn claim(&self) -> Result<(), BridgeError> {
        // One claim at a time in this process: jobs start concurrently, and the bridge must never be seen
        // without its alias while one of them is making it.
        let _g = self.claiming.lock().unwrap_or_else(|e| e.into_inner());
        match self.inspect()? {
            Claim::Ours => Ok(()),
            Claim::TakeOver => self.mark(),
            Claim::Absent => {
                // Made here rather than by the bridge plugin (which configures an existing bridge), so it
                // carries the alias from its first moment.
                match self.ip(&["link", "add", "name", &self.name, "type", "bridge"]) {
                    Ok(_) => self.mark(),
                    // Someone else made it in between: whose it is decides.
                    Err(e) => match self.inspect()? {
                        Claim::Absent => Err(e),
                        Claim::Ours => Ok(()),
                        Claim::TakeOver => self.mark(),
                    },
                }
            }
        }
    }

    /// What [`Bridge::claim`] would do, changing nothing (for `doctor`). The subnet is checked before the
    /// bridge is made or taken over; once it is ours, that check stands.
    pub fn inspect(&self) -> Result<Claim, BridgeError> {
        let mut claim = Claim::Absent;
        if let Some(alias) = self.alias() {
            if self.instance.owns_alias(&alias) {
                return Ok(Claim::Ours);
            }
            let ports = self.ports();
            if !ports.is_empty() || owner_running(&alias) {
                let owner = if alias.is_empty() {
                    format!("something other than this instance ({} ports attached)", ports.len())
                } else {
                    format!("another ephemerd (alias \"{alias}\")")
                };
                return Err(BridgeError::Taken { bridge: self.name.clone(), owner });
            }
            claim = Claim::TakeOver;
        }
        self.check_subnet(&host_addresses())?;
        Ok(claim)
    }

    /// Records the instance on the bridge.
    fn mark(&self) -> Result<(), BridgeError> {
        self.ip(&["link", "set", "dev", &self.name, "alias", &self.instance.bridge_alias()]).map(drop)
    }

    fn check_subnet(&self, addresses: &[(String, Ipv4Addr, u8)]) -> Result<(), BridgeError> {
        for (interface, addr, prefix) in addresses {
            if *interface == self.name {
                continue;
            }
            let net = Ipv4Net::parse(&format!("{addr}/{prefix}"))
                .map_err(|message| BridgeError::Io { bridge: self.name.clone(), message })?;
            if net.overlaps(&self.subnet) {
                return Err(BridgeError::SubnetInUse {
                    subnet: self.subnet,
                    address: format!("{addr}/{prefix}"),
                    interface: interface.clone(),
                });
            }
        }
        Ok(())
    }

    /// Deletes the bridge if it is this instance's and no port is left on it. Idempotent.
    pub fn remove_if_idle(&self) -> Result<(), BridgeError> {
        let Some(alias) = self.alias() else { return Ok(()) };
        if !self.instance.owns_alias(&alias) || !self.ports().is_empty() {
            return Ok(());
        }
        match self.ip(&["link", "del", "dev", &self.name]) {
            Err(e) if self.alias().is_some() => Err(e),
            _ => Ok(()),
        }
    }
}

/// Whether the ephemerd an alias names still holds its data dir's lock (an alias not of ours: assume so).
fn owner_running(alias: &str) -> bool {
    if alias.is_empty() {
        return false;
    }
    let Some(dir) = alias.strip_prefix("ephemerd ").and_then(|rest| rest.split_once(' ')).map(|(_, d)| d) else {
        return true;
    };
    let Ok(file) = std::fs::File::open(std::path::Path::new(dir).join("lock")) else { return false };
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err()
}

/// Every IPv4 address on the host: (interface, address, prefix), from `ip -o -4 addr show`.
fn host_addresses() -> Vec<(String, Ipv4Addr, u8)> {
    let out = std::process::Command::new("ip").args(["-o", "-4", "addr", "show"]).output();
    out.map(|o| parse_addresses(&String::from_utf8_lossy(&o.stdout))).unwrap_or_default()
}

fn parse_addresses(text: &str) -> Vec<(String, Ipv4Addr, u8)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let at = f.iter().position(|w| *w == "inet")?;
            let (a, p) = f.get(at + 1)?.split_once('/')?;
            Some((f.get(1)?.trim_end_matches(':').to_string(), a.parse().ok()?, p.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_interface_in_the_subnet_is_refused() {
        let text = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
4: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global eth0\\       valid_lft forever
7: ephemerd0    inet 10.231.0.1/16 brd 10.231.255.255 scope global ephemerd0\\       valid_lft forever";
        let addrs = parse_addresses(text);
        assert_eq!(addrs.len(), 3);
        assert_eq!(addrs[1], ("eth0".to_string(), Ipv4Addr::new(10, 0, 2, 15), 24));
        let inst = Instance::at(std::path::Path::new("/var/lib/ephemerd"));
        let ours = Bridge::new("ephemerd0", Ipv4Net::parse("10.231.0.0/16").unwrap(), inst.clone());
        ours.check_subnet(&addrs).unwrap();
        let clash = Bridge::new("ephemerd1", Ipv4Net::parse("10.231.0.0/24").unwrap(), inst.clone());
        let e = clash.check_subnet(&addrs).unwrap_err().to_string();
        assert!(e.contains("10.231.0.1/16 on ephemerd0") && e.contains("network.subnet"), "{e}");
        let wide = Bridge::new("ephemerd1", Ipv4Net::parse("10.0.0.0/8").unwrap(), inst);
        assert!(wide.check_subnet(&addrs).unwrap_err().to_string().contains("eth0"));
    }
}
