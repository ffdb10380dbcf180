//! [`VmHost`]: the [`Host`] that boots the worker as a VM through a [`LinuxVm`]. Per boot it makes the
//! host disk if its inputs changed, prepares the image store (`store`) if it is stale, writes the
//! one-shot config disk (token, address, resolvers, the worker's config), brings the instance's tap link
//! up, starts the VM and waits until the worker listens; then (once the worker answers Hello with the
//! token) it deletes the config disk. Stopping stops the VM (deleting its overlays) and takes the link
//! down. Files live in `DATA/vm`: host.img and store.img (kept), console.log (the last boot's console),
//! and while a VM runs its overlays, QMP socket and pid file.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use super::boot::BootConfig;
use super::{LinuxVm, VmSpec, hostdisk, store};
use crate::config::{Config, Ipv4Net};
use crate::dispatch::auth::Token;
use crate::platform::DataDirs;
use crate::runtime::instance::Instance;
use crate::worker::link::Link;
use crate::worker::namespace::{PORT, worker_config};
use crate::worker::{Booted, Host, HostError};

/// How long a boot may take before the worker answers (TCG is slow).
const BOOT_WAIT: Duration = Duration::from_secs(300);
/// How long the boot that prepares the image store may take (it imports every image, under TCG too).
const PREPARE_WAIT: Duration = Duration::from_secs(900);

pub struct VmHost {
    vm: Box<dyn LinuxVm>,
    dirs: DataDirs,
    link: Link,
    cpus: u32,
    memory_mib: u64,
    disk: u64,
    /// The boot set's base disk (the image store's stamp covers it).
    base: PathBuf,
    runner_dir: Option<PathBuf>,
    images: Vec<PathBuf>,
    worker_config: String,
    dns: Vec<Ipv4Addr>,
    host_ports: Vec<u16>,
    log_level: String,
    data_in: String,
    /// The binary the VM runs (by default our own).
    exe: Option<PathBuf>,
}

impl VmHost {
    /// The VM worker of the instance at `dirs`, run by `vm`, as `cfg` configures it.
    pub fn new(vm: Box<dyn LinuxVm>, cfg: &Config, dirs: &DataDirs, log_level: &str) -> Result<Self, HostError> {
        let instance = Instance::of(dirs);
        let net = match &cfg.worker.link {
            Some(l) => Ipv4Net::parse(l).map_err(HostError::Io)?,
            None => Link::default_net(&instance),
        };
        let link = Link::tap(&instance, net);
        let dns = crate::runtime::network::resolvers(&cfg.network.dns);
        Ok(Self {
            vm,
            dirs: dirs.clone(),
            worker_config: worker_config(cfg, &link, &dns),
            link,
            cpus: cfg.worker.cpus,
            memory_mib: cfg.worker.memory.0 >> 20,
            disk: cfg.worker.disk.0,
            base: cfg.worker.vm_image.clone().unwrap_or_default().join("base.img"),
            runner_dir: cfg.runner.dir.clone(),
            images: cfg.worker.images.clone(),
            dns,
            host_ports: cfg.network.allow_host_ports.clone(),
            log_level: log_level.to_string(),
            data_in: format!("/var/lib/ephemerd/{}", instance.id()),
            exe: None,
        })
    }

    /// Runs `exe` in the VM instead of our own binary (a bench or test harness is not `ephemerd`).
    pub fn with_binary(mut self, exe: PathBuf) -> Self {
        self.exe = Some(exe);
        self
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    pub fn dir(&self) -> PathBuf {
        self.dirs.root.join("vm")
    }

    pub fn console_log(&self) -> PathBuf {
        self.dir().join("console.log")
    }

    fn boot_disk(&self) -> PathBuf {
        self.dir().join("boot.img")
    }

    /// The files of a running VM (its overlay, QMP socket and pid file) and its config disk.
    pub fn running_files(&self) -> Vec<PathBuf> {
        let mut f = self.vm.files();
        f.push(self.boot_disk());
        f
    }

    fn console_tail(&self) -> String {
        let text = std::fs::read_to_string(self.console_log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(6)..].join(" | ")
    }

    fn store(&self) -> PathBuf {
        self.dir().join("store.img")
    }

    fn write_boot_disk(&self, token: &Token, imports: Vec<String>, prepare_store: bool) -> Result<(), HostError> {
        let cfg = BootConfig {
            token: token.expose_hex(),
            address: self.link.worker_ip(),
            prefix: self.link.net.prefix,
            gateway: self.link.host_ip(),
            dns: self.dns.clone(),
            hostname: crate::worker::enter::HOSTNAME.into(),
            port: PORT,
            data_dir: self.data_in.clone(),
            config: self.worker_config.clone(),
            log_level: self.log_level.clone(),
            imports,
            prepare_store,
            time_nanos: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or_default(),
        };
        let bytes = cfg.to_disk().map_err(|e| HostError::Start(e.to_string()))?;
        let path = self.boot_disk();
        let io = |e: std::io::Error| HostError::Io(format!("writing {}: {e}", path.display()));
        let _ = std::fs::remove_file(&path);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        Ok(())
    }

    /// Prepares the image store unless it is current: a boot that imports the images onto a blank store
    /// and powers off, saying on its config disk that it is done.
    async fn ensure_store(&self, inputs: &hostdisk::Inputs<'_>, spec: &VmSpec) -> Result<(), HostError> {
        let stamp = store::stamp(&self.base, inputs, self.disk)?;
        if store::current(&spec.store, &stamp) {
            return Ok(());
        }
        let started = std::time::Instant::now();
        tracing::info!(images = inputs.images.len(), "preparing the VM's image store: one boot imports the images");
        let new = spec.store.with_extension("new");
        store::blank(&new, self.disk)?;
        self.write_boot_disk(&Token::generate(), inputs.imports(), true)?;
        let prepare = VmSpec { store: new.clone(), prepare_store: true, ..spec.clone() };
        let prepared = self.run_to_end(&prepare).await;
        let report = std::fs::read(self.boot_disk()).unwrap_or_default();
        let _ = std::fs::remove_file(self.boot_disk());
        let prepared = prepared.and_then(|said| match report.starts_with(super::boot::PREPARED) {
            true => Ok(()),
            false => Err(HostError::Start(format!(
                "the boot that prepares the VM's image store ended without preparing it ({said}): {}",
                self.console_tail()
            ))),
        });
        if let Err(e) = prepared {
            let _ = std::fs::remove_file(&new);
            return Err(e);
        }
        store::install(&new, &spec.store, &stamp)?;
        tracing::info!(ms = started.elapsed().as_millis() as u64, "the VM's image store is prepared");
        Ok(())
    }

    /// Runs a VM that ends by itself (within [`PREPARE_WAIT`]); what its hypervisor said.
    async fn run_to_end(&self, spec: &VmSpec) -> Result<String, HostError> {
        self.vm.start(spec).await?;
        let deadline = tokio::time::Instant::now() + PREPARE_WAIT;
        while self.vm.running().is_ok() {
            if tokio::time::Instant::now() >= deadline {
                let _ = self.vm.stop().await;
                return Err(HostError::Start(format!(
                    "the boot that prepares the VM's image store did not end within {} s: {}",
                    PREPARE_WAIT.as_secs(),
                    self.console_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let said = self.vm.exit_reason().await;
        self.vm.stop().await?;
        Ok(said)
    }

    async fn boot_inner(&self) -> Result<Booted, HostError> {
        let dir = self.dir();
        std::fs::create_dir_all(&dir).map_err(|e| HostError::Io(format!("{}: {e}", dir.display())))?;
        let exe = match &self.exe {
            Some(e) => e.clone(),
            None => {
                std::env::current_exe().map_err(|e| HostError::Start(format!("cannot find our own binary: {e}")))?
            }
        };
        let inputs = hostdisk::Inputs { exe: &exe, runner: self.runner_dir.as_deref(), images: &self.images };
        let host_disk = dir.join("host.img");
        hostdisk::ensure(&host_disk, &inputs).await?;
        self.link.up(&self.dns, &self.host_ports).await?;
        let spec = VmSpec {
            cpus: self.cpus,
            memory_mib: self.memory_mib,
            host_disk,
            boot_disk: self.boot_disk(),
            console: self.console_log(),
            tap: self.link.host_if.clone(),
            store: self.store(),
            prepare_store: false,
        };
        self.ensure_store(&inputs, &spec).await?;
        let token = Token::generate();
        self.write_boot_disk(&token, Vec::new(), false)?;
        self.vm.start(&spec).await?;
        let addr = format!("{}:{PORT}", self.link.worker_ip());
        let deadline = tokio::time::Instant::now() + BOOT_WAIT;
        loop {
            if let Err(why) = self.vm.running() {
                let said = self.vm.exit_reason().await;
                return Err(HostError::Start(format!(
                    "the VM stopped while booting ({why}; {said}): {}",
                    self.console_tail()
                )));
            }
            // Ready when the worker answers Hello with the boot's token: its containerd is up and its
            // images imported.
            if crate::dispatch::client::answers_hello(&addr, &token, Duration::from_secs(2)).await.is_ok() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HostError::Start(format!(
                    "the worker in the VM did not listen within {} s: {}",
                    BOOT_WAIT.as_secs(),
                    self.console_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The guest read and zeroed its config before its worker listened.
        let _ = std::fs::remove_file(self.boot_disk());
        Ok(Booted { addr, token })
    }
}

#[async_trait::async_trait]
impl Host for VmHost {
    fn kind(&self) -> &'static str {
        "worker VM"
    }

    fn backend(&self) -> String {
        self.vm.backend().into()
    }

    async fn boot(&self) -> Result<Booted, HostError> {
        self.stop().await?;
        let started = std::time::Instant::now();
        match self.boot_inner().await {
            Ok(b) => {
                tracing::info!(addr = %b.addr, backend = self.vm.backend(), ms = started.elapsed().as_millis() as u64, "worker VM up");
                Ok(b)
            }
            Err(e) => {
                let _ = self.stop().await;
                Err(e)
            }
        }
    }

    fn alive(&self) -> bool {
        self.vm.running().is_ok()
    }

    fn clean_each_boot(&self) -> bool {
        true
    }

    async fn present(&self) -> bool {
        self.link.present().await || self.running_files().iter().any(|f| f.exists())
    }

    async fn stop(&self) -> Result<(), HostError> {
        let r = self.vm.stop().await;
        let _ = std::fs::remove_file(self.boot_disk());
        self.link.down().await?;
        r
    }
}
