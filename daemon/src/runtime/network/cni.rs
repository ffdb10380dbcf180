//! CNI, spoken directly: the plugins (`loopback`, then `bridge` + `host-local`) are executed
//! with the CNI environment and their config on stdin, chaining `prevResult` as the spec says. The ADD
//! result is cached per job so DEL can hand it back; leases live in our own IPAM dir. Each job's port on the
//! bridge is isolated (the kernel forwards no frame between two isolated ports), so jobs cannot reach each
//! other over the bridge in any protocol, whether or not `br_netfilter` shows bridged frames to iptables.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::bridge::{Bridge, BridgeError};
use crate::config::Ipv4Net;
use crate::runtime::binaries::{NotFound, SearchPath};
use crate::runtime::instance::Instance;

const CNI_VERSION: &str = "1.0.0";

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error(transparent)]
    Plugin(#[from] NotFound),
    #[error(transparent)]
    Bridge(#[from] BridgeError),
    #[error("CNI {command} {plugin} for {id}: {message}")]
    Exec { command: &'static str, plugin: String, id: String, message: String },
    #[error("CNI result for {id} has no IPv4 address")]
    NoAddress { id: String },
    #[error("cannot isolate {id}'s bridge port {port} from its peers (needs Linux 4.18 and iproute2): {message}")]
    Isolate { id: String, port: String, message: String },
}

/// What the job got from the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub ip: Ipv4Addr,
    pub gateway: Ipv4Addr,
}

/// The job network: a bridge with NAT, addresses from our subnet, CNI's own forwarding rules.
pub struct Cni {
    plugin_dir: PathBuf,
    loopback: Value,
    chain: Vec<Value>,
    results_dir: PathBuf,
    pub subnet: Ipv4Net,
    ipam_dir: PathBuf,
    bridge: Bridge,
    /// The CNI network name: the instance's, so its leases sit apart from any other instance's.
    network: String,
}

impl Cni {
    pub fn new(
        search: &SearchPath,
        instance: &Instance,
        bridge: &str,
        subnet: Ipv4Net,
        ipam_dir: PathBuf,
        results_dir: PathBuf,
    ) -> Result<Self, CniError> {
        let bridge_bin = search.find("bridge", "the CNI bridge plugin (Debian: containernetworking-plugins)")?;
        for p in ["host-local", "loopback"] {
            let found = search.find(p, "a CNI plugin (Debian: containernetworking-plugins)")?;
            if found.parent() != bridge_bin.parent() {
                return Err(CniError::Plugin(NotFound {
                    name: p.into(),
                    what: "a CNI plugin in the same directory as `bridge`",
                    looked: bridge_bin.parent().map(|d| vec![d.display().to_string()]).unwrap_or_default(),
                }));
            }
        }
        let plugin_dir = bridge_bin.parent().map(Path::to_path_buf).unwrap_or_default();
        let chain = vec![json!({
            "type": "bridge",
            "bridge": bridge,
            "isGateway": true,
            // NAT and forwarding accepts are the firewall module's (one rule per subnet, not per job).
            "ipMasq": false,
            "hairpinMode": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": subnet.to_string(), "gateway": subnet.gateway().to_string() }]],
                "routes": [{ "dst": "0.0.0.0/0" }],
                "dataDir": ipam_dir.display().to_string(),
            },
        })];
        Ok(Self {
            plugin_dir,
            loopback: json!({ "type": "loopback" }),
            chain,
            results_dir,
            subnet,
            ipam_dir,
            bridge: Bridge::new(bridge, subnet, instance.clone()),
            network: instance.cni_network(),
        })
    }

    fn result_path(&self, id: &str) -> PathBuf {
        self.results_dir.join(format!("{id}.json"))
    }

    /// Attaches the namespace at `netns` to the job network.
    pub async fn add(&self, id: &str, netns: &Path) -> Result<Attachment, CniError> {
        std::fs::create_dir_all(&self.results_dir).ok();
        self.bridge.claim()?;
        self.exec("ADD", id, netns, "lo", "lo", &self.loopback, None).await?;
        let mut prev: Option<Value> = None;
        for conf in &self.chain {
            let out = self.exec("ADD", id, netns, "eth0", &self.network, conf, prev.as_ref()).await?;
            prev = Some(out);
        }
        let result = prev.unwrap_or(Value::Null);
        // Cached for DEL; written before anything else can fail.
        let _ = std::fs::write(self.result_path(id), result.to_string());
        let attachment = parse_attachment(&result).ok_or_else(|| CniError::NoAddress { id: id.to_string() })?;
        let port = host_port(&result, self.bridge.name()).ok_or_else(|| CniError::Isolate {
            id: id.to_string(),
            port: "(none)".into(),
            message: "the bridge plugin's result names no host-side interface".into(),
        })?;
        isolate_port(id, &port).await?;
        Ok(attachment)
    }

    /// Detaches the job: DEL through the chain in reverse, with the cached result (or one rebuilt from the
    /// job's lease). Idempotent: DEL of something already gone succeeds.
    pub async fn del(&self, id: &str, netns: &Path) -> Result<(), CniError> {
        let prev = std::fs::read_to_string(self.result_path(id))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .or_else(|| self.lease_of(id).map(|ip| synth_result(ip, self.subnet)));
        let netns_arg: &Path = if netns.exists() { netns } else { Path::new("") };
        let mut first_err = None;
        for conf in self.chain.iter().rev() {
            if let Err(e) = self.exec("DEL", id, netns_arg, "eth0", &self.network, conf, prev.as_ref()).await {
                first_err.get_or_insert(e);
            }
        }
        let _ = std::fs::remove_file(self.result_path(id));
        match first_err {
            Some(e) if self.lease_of(id).is_some() => Err(e),
            _ => Ok(()),
        }
    }

    /// The address leased to `id` in our IPAM dir, if any.
    pub fn lease_of(&self, id: &str) -> Option<Ipv4Addr> {
        self.leases().into_iter().find(|(_, owner)| owner == id).map(|(ip, _)| ip)
    }

    /// Every lease: (address, owning container id).
    pub fn leases(&self) -> Vec<(Ipv4Addr, String)> {
        let dir = self.ipam_dir.join(&self.network);
        let Ok(rd) = std::fs::read_dir(&dir) else { return Vec::new() };
        rd.flatten()
            .filter_map(|e| {
                let ip: Ipv4Addr = e.file_name().to_str()?.parse().ok()?;
                let text = std::fs::read_to_string(e.path()).ok()?;
                Some((ip, text.lines().next()?.trim().to_string()))
            })
            .collect()
    }

    /// Deletes the bridge once no job of ours is on it.
    pub fn remove_bridge_if_idle(&self) -> Result<(), CniError> {
        Ok(self.bridge.remove_if_idle()?)
    }

    #[allow(clippy::too_many_arguments)]
    async fn exec(
        &self,
        command: &'static str,
        id: &str,
        netns: &Path,
        ifname: &str,
        name: &str,
        conf: &Value,
        prev: Option<&Value>,
    ) -> Result<Value, CniError> {
        let plugin = conf["type"].as_str().unwrap_or_default().to_string();
        let err = |message: String| CniError::Exec { command, plugin: plugin.clone(), id: id.to_string(), message };
        let mut stdin_conf = conf.clone();
        stdin_conf["cniVersion"] = json!(CNI_VERSION);
        stdin_conf["name"] = json!(name);
        if let Some(p) = prev {
            stdin_conf["prevResult"] = p.clone();
        }
        let mut child = Command::new(self.plugin_dir.join(&plugin))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", &self.plugin_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| err(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(stdin_conf.to_string().as_bytes()).await.map_err(|e| err(e.to_string()))?;
        }
        let started = std::time::Instant::now();
        let out = child.wait_with_output().await.map_err(|e| err(e.to_string()))?;
        tracing::debug!(plugin, command, ms = started.elapsed().as_secs_f64() * 1000.0, "cni plugin");
        if !out.status.success() {
            // Plugins report errors as JSON on stdout: {"code": .., "msg": .., "details": ..}.
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let msg = match (v["msg"].as_str(), v["details"].as_str()) {
                (Some(m), Some(d)) if !d.is_empty() => format!("{m}: {d}"),
                (Some(m), _) => m.to_string(),
                _ => format!("{} {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
            };
            return Err(err(msg.trim().to_string()));
        }
        if command == "ADD" {
            serde_json::from_slice(&out.stdout).map_err(|e| err(format!("unreadable result: {e}")))
        } else {
            Ok(Value::Null)
        }
    }
}

/// The host end of the job's veth pair: the result's interface that is neither the bridge nor in a sandbox.
fn host_port(result: &Value, bridge: &str) -> Option<String> {
    result["interfaces"].as_array()?.iter().find_map(|i| {
        let name = i["name"].as_str()?;
        (name != bridge && i.get("sandbox").is_none_or(|s| s.as_str().is_none_or(str::is_empty)))
            .then(|| name.to_string())
    })
}

/// Marks `port` isolated on its bridge (IFLA_BRPORT_ISOLATED), and reads it back.
async fn isolate_port(id: &str, port: &str) -> Result<(), CniError> {
    let err = |message: String| CniError::Isolate { id: id.to_string(), port: port.to_string(), message };
    let out = Command::new("ip")
        .args(["link", "set", "dev", port, "type", "bridge_slave", "isolated", "on"])
        .output()
        .await
        .map_err(|e| err(format!("cannot run ip: {e}")))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    let shown = Command::new("ip")
        .args(["-d", "link", "show", "dev", port])
        .output()
        .await
        .map_err(|e| err(format!("cannot run ip: {e}")))?;
    if !String::from_utf8_lossy(&shown.stdout).contains("isolated on") {
        return Err(err("the kernel did not keep the flag".into()));
    }
    Ok(())
}

fn parse_attachment(result: &Value) -> Option<Attachment> {
    result["ips"].as_array()?.iter().find_map(|ip| {
        let addr = ip["address"].as_str()?.split('/').next()?.parse::<Ipv4Addr>().ok()?;
        let gw = ip["gateway"].as_str().and_then(|g| g.parse().ok()).unwrap_or(Ipv4Addr::UNSPECIFIED);
        Some(Attachment { ip: addr, gateway: gw })
    })
}

/// A minimal ADD result for DEL when the cached one is lost (crash between ADD and caching).
fn synth_result(ip: Ipv4Addr, subnet: Ipv4Net) -> Value {
    json!({
        "cniVersion": CNI_VERSION,
        "interfaces": [{ "name": "eth0" }],
        "ips": [{ "address": format!("{ip}/{}", subnet.prefix), "gateway": subnet.gateway().to_string(), "interface": 0 }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_from_a_bridge_result() {
        let r = json!({"cniVersion":"1.0.0","interfaces":[{"name":"ephemerd0"},{"name":"veth1"},{"name":"eth0","sandbox":"/x"}],
            "ips":[{"interface":2,"address":"10.231.0.7/16","gateway":"10.231.0.1"}]});
        assert_eq!(
            parse_attachment(&r),
            Some(Attachment { ip: Ipv4Addr::new(10, 231, 0, 7), gateway: Ipv4Addr::new(10, 231, 0, 1) })
        );
        assert_eq!(parse_attachment(&json!({})), None);
        assert_eq!(host_port(&r, "ephemerd0").as_deref(), Some("veth1"));
        assert_eq!(
            host_port(&json!({"interfaces":[{"name":"ephemerd0"},{"name":"eth0","sandbox":"/x"}]}), "ephemerd0"),
            None
        );
        let s = synth_result(Ipv4Addr::new(10, 231, 0, 9), Ipv4Net::parse("10.231.0.0/16").unwrap());
        assert_eq!(parse_attachment(&s).unwrap().ip, Ipv4Addr::new(10, 231, 0, 9));
    }
}
