//! The QEMU backend of [`LinuxVm`]: `qemu-system-x86_64` on a q35 machine with KVM where this machine has
//! hardware virtualization and TCG otherwise, booting the boot set's kernel and initramfs directly, with
//! virtio disks (the boot's qcow2 overlays of the base disk and of the image store, the host disk
//! read-only, the one-shot config disk), virtio-net on the instance's tap device, a balloon with free page
//! reporting, and QMP on a Unix socket in the instance's VM dir for control. Its pid file and QMP socket find a VM a crashed daemon left.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::{LinuxVm, VmSpec};
use crate::worker::HostError;
use crate::worker::namespace::spawn_on_lasting_thread;

/// How long QEMU gets to quit after QMP `quit` before it is killed.
const QUIT_WAIT: Duration = Duration::from_secs(10);

/// The kernel, initramfs and base disk `rootfs/build-vm-image.sh` makes.
#[derive(Debug, Clone)]
pub struct BootSet {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub base: PathBuf,
}

impl BootSet {
    pub fn in_dir(dir: &Path) -> Result<Self, HostError> {
        let set = Self { kernel: dir.join("vmlinuz"), initrd: dir.join("initrd.img"), base: dir.join("base.img") };
        for f in [&set.kernel, &set.initrd, &set.base] {
            if !f.is_file() {
                return Err(HostError::Rootfs {
                    path: dir.to_path_buf(),
                    message: format!("no {} there (rootfs/build-vm-image.sh builds the VM's boot set)", f.display()),
                });
            }
        }
        Ok(set)
    }
}

/// How QEMU runs guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// What `[worker] accel` asks for (`None`: pick by this machine).
    pub fn wanted(c: crate::config::VmAccel) -> Option<Self> {
        match c {
            crate::config::VmAccel::Auto => None,
            crate::config::VmAccel::Kvm => Some(Self::Kvm),
            crate::config::VmAccel::Tcg => Some(Self::Tcg),
        }
    }
}

/// The accelerator to use, and why (for `doctor` and the log). KVM needs `/dev/kvm` and a CPU with
/// hardware virtualization: a nested KVM without it (such as PVM) runs only guests built for it.
pub fn pick_accel(want: Option<Accel>) -> (Accel, String) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    let dev = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm");
    match (want, dev, hw) {
        (Some(Accel::Tcg), _, _) => (Accel::Tcg, "TCG (worker.accel = \"tcg\")".into()),
        (_, Ok(_), true) => (Accel::Kvm, "KVM".into()),
        (Some(Accel::Kvm), _, _) => {
            (Accel::Kvm, "KVM (worker.accel = \"kvm\", although this machine may not have it)".into())
        }
        (None, Err(e), _) => (Accel::Tcg, format!("TCG, software emulation: /dev/kvm cannot be opened ({e})")),
        (None, Ok(_), false) => (
            Accel::Tcg,
            "TCG, software emulation: /dev/kvm is there but the CPU shows no hardware virtualization (vmx/svm), \
             as in a nested VM whose KVM (PVM) runs only guests built for it"
                .into(),
        ),
    }
}

pub struct QemuVm {
    dir: PathBuf,
    name: String,
    set: BootSet,
    accel: Accel,
    child: std::sync::Mutex<Option<tokio::process::Child>>,
}

impl QemuVm {
    /// A VM of the instance `name`, its files in `dir`.
    pub fn new(dir: PathBuf, name: String, set: BootSet, accel: Accel) -> Self {
        Self { dir, name, set, accel, child: std::sync::Mutex::new(None) }
    }

    fn overlay(&self) -> PathBuf {
        self.dir.join("overlay.qcow2")
    }
    fn store_overlay(&self) -> PathBuf {
        self.dir.join("store.qcow2")
    }
    fn qmp_path(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }
    fn pid_path(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }

    /// QEMU's arguments (pure; tested below).
    pub fn args(&self, spec: &VmSpec) -> Vec<String> {
        let d = |p: &Path| p.display().to_string();
        let mut a: Vec<String> =
            vec!["-name".into(), format!("{},process={}", self.name, self.name), "-machine".into(), "q35".into()];
        match self.accel {
            Accel::Kvm => a.extend(["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()]),
            Accel::Tcg => a.extend(["-accel".into(), "tcg,thread=multi".into(), "-cpu".into(), "max".into()]),
        }
        a.extend([
            "-smp".into(),
            spec.cpus.to_string(),
            "-m".into(),
            format!("{}M", spec.memory_mib),
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-nographic".into(),
            "-no-reboot".into(),
            "-chardev".into(),
            format!("file,id=console,path={}", d(&spec.console)),
            "-serial".into(),
            "chardev:console".into(),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", d(&self.qmp_path())),
            "-pidfile".into(),
            d(&self.pid_path()),
            "-kernel".into(),
            d(&self.set.kernel),
            "-initrd".into(),
            d(&self.set.initrd),
            "-append".into(),
            // No quiet: the console log is the VM's boot log. The i8042 probe costs a second on q35.
            "console=ttyS0 panic=-1 loglevel=4 random.trust_cpu=on 8250.nr_uarts=1 i8042.noaux i8042.nomux \
             i8042.nopnp i8042.dumbkbd"
                .into(),
        ]);
        let store = match spec.prepare_store {
            true => (d(&spec.store), "raw"),
            false => (d(&self.store_overlay()), "qcow2"),
        };
        for (id, file, format, serial, ro) in [
            ("root", d(&self.overlay()), "qcow2", "ephemerd-root", false),
            ("host", d(&spec.host_disk), "raw", super::hostdisk::SERIAL, true),
            ("boot", d(&spec.boot_disk), "raw", super::boot::SERIAL, false),
            ("store", store.0, store.1, super::store::SERIAL, false),
        ] {
            let ro = if ro { ",readonly=on" } else { "" };
            a.push("-drive".into());
            a.push(format!("if=none,id={id},file={file},format={format}{ro}"));
            a.push("-device".into());
            a.push(format!("virtio-blk-pci,drive={id},serial={serial}"));
        }
        a.extend([
            "-netdev".into(),
            format!("tap,id=net,ifname={},script=no,downscript=no", spec.tap),
            "-device".into(),
            "virtio-net-pci,netdev=net".into(),
            "-device".into(),
            "virtio-balloon-pci,free-page-reporting=on".into(),
            "-device".into(),
            "virtio-rng-pci".into(),
        ]);
        a
    }

    /// The pid of a QEMU of this instance a crashed daemon left (its pid file, if the pid is that QEMU).
    fn orphan(&self) -> Option<i32> {
        let pid = std::fs::read_to_string(self.pid_path()).ok()?.trim().parse::<i32>().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let qmp = format!("unix:{},server=on,wait=off", self.qmp_path().display());
        cmdline.split(|b| *b == 0).any(|a| a == qmp.as_bytes()).then_some(pid)
    }

    /// Asks QEMU to quit over QMP.
    async fn quit(&self) -> Result<(), String> {
        let stream = qapi::futures::QmpStreamTokio::open_uds(self.qmp_path()).await.map_err(|e| e.to_string())?;
        let stream = stream.negotiate().await.map_err(|e| e.to_string())?;
        let (qmp, handle) = stream.spawn_tokio();
        let r = qmp.execute(qapi::qmp::quit {}).await;
        drop(qmp);
        handle.abort();
        match r {
            Ok(_) => Ok(()),
            // QEMU may close the socket before its answer arrives.
            Err(e) if e.to_string().contains("closed") || e.to_string().contains("EOF") => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Whether `pid` is gone, waiting up to `wait`.
    async fn gone(pid: i32, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A fresh qcow2 overlay at `overlay` of the raw disk `backing`.
async fn overlay_of(backing: &Path, overlay: &Path) -> Result<(), HostError> {
    let err = |m: String| HostError::Start(m);
    let _ = std::fs::remove_file(overlay);
    let out = tokio::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(backing)
        .arg(overlay)
        .output()
        .await
        .map_err(|e| err(format!("cannot run qemu-img (apt install qemu-utils): {e}")))?;
    if !out.status.success() {
        return Err(err(format!("qemu-img create: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

#[async_trait::async_trait]
impl LinuxVm for QemuVm {
    fn backend(&self) -> &'static str {
        match self.accel {
            Accel::Kvm => "qemu (kvm)",
            Accel::Tcg => "qemu (tcg)",
        }
    }

    #[allow(unsafe_code)]
    async fn start(&self, spec: &VmSpec) -> Result<(), HostError> {
        let err = |m: String| HostError::Start(m);
        std::fs::create_dir_all(&self.dir).map_err(|e| err(format!("{}: {e}", self.dir.display())))?;
        overlay_of(&self.set.base, &self.overlay()).await?;
        if !spec.prepare_store {
            overlay_of(&spec.store, &self.store_overlay()).await?;
        }
        let mut cmd = tokio::process::Command::new("qemu-system-x86_64");
        cmd.args(self.args(spec))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: prctl(PR_SET_PDEATHSIG) takes no pointers; the VM dies with the daemon.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = spawn_on_lasting_thread(cmd)
            .map_err(|e| err(format!("cannot run qemu-system-x86_64 (apt install qemu-system-x86): {e}")))?;
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        Ok(())
    }

    fn running(&self) -> Result<(), String> {
        let mut c = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let Some(child) = c.as_mut() else { return Err("not started".into()) };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("QEMU exited ({status})")),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn exit_reason(&self) -> String {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(child) = child else { return String::new() };
        match child.wait_with_output().await {
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        }
    }

    async fn stop(&self) -> Result<(), HostError> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        let pid = child.as_ref().and_then(|c| c.id()).map(|p| p as i32).or_else(|| self.orphan());
        if let Some(pid) = pid {
            if child.is_none() {
                tracing::warn!(pid, "stopping the VM a previous daemon left");
            }
            if let Err(e) = self.quit().await {
                tracing::debug!(error = %e, "QMP quit");
            }
            // Our own child stays a zombie (its /proc entry there) until it is waited for.
            let exited = match child.as_mut() {
                Some(c) => tokio::time::timeout(QUIT_WAIT, c.wait()).await.is_ok(),
                None => Self::gone(pid, QUIT_WAIT).await,
            };
            if !exited {
                tracing::warn!(pid, "QEMU did not quit in {} s: killing it", QUIT_WAIT.as_secs());
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                match child.as_mut() {
                    Some(c) => {
                        let _ = c.wait().await;
                    }
                    None => {
                        Self::gone(pid, QUIT_WAIT).await;
                    }
                }
            }
        }
        for f in self.files() {
            match std::fs::remove_file(&f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(HostError::Io(format!("removing {}: {e}", f.display()))),
            }
        }
        Ok(())
    }

    fn files(&self) -> Vec<PathBuf> {
        vec![self.overlay(), self.store_overlay(), self.qmp_path(), self.pid_path()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_boots_the_set_on_its_three_disks_and_the_tap_with_qmp_and_no_default_devices() {
        let set = BootSet { kernel: "/i/vmlinuz".into(), initrd: "/i/initrd.img".into(), base: "/i/base.img".into() };
        let vm = QemuVm::new("/d/vm".into(), "ephemerd-abc-vm".into(), set, Accel::Tcg);
        let spec = VmSpec {
            cpus: 2,
            memory_mib: 2048,
            host_disk: "/d/vm/host.img".into(),
            boot_disk: "/d/vm/boot.img".into(),
            console: "/d/vm/console.log".into(),
            tap: "edwabc".into(),
            store: "/d/vm/store.img".into(),
            prepare_store: false,
        };
        let a = vm.args(&spec).join(" ");
        for want in [
            "-accel tcg,thread=multi -cpu max",
            "-smp 2 -m 2048M -nodefaults -no-user-config -nographic -no-reboot",
            "-qmp unix:/d/vm/qmp.sock,server=on,wait=off",
            "-pidfile /d/vm/qemu.pid",
            "-kernel /i/vmlinuz -initrd /i/initrd.img",
            "if=none,id=root,file=/d/vm/overlay.qcow2,format=qcow2 -device virtio-blk-pci,drive=root,serial=ephemerd-root",
            "file=/d/vm/host.img,format=raw,readonly=on -device virtio-blk-pci,drive=host,serial=ephemerd-host",
            "file=/d/vm/boot.img,format=raw -device virtio-blk-pci,drive=boot,serial=ephemerd-boot",
            "tap,id=net,ifname=edwabc,script=no,downscript=no",
            "virtio-balloon-pci,free-page-reporting=on",
            "file=/d/vm/store.qcow2,format=qcow2 -device virtio-blk-pci,drive=store,serial=ephemerd-store",
        ] {
            assert!(a.contains(want), "{want:?} not in {a}");
        }
        assert!(!a.contains("token"), "the token never goes on QEMU's command line");
        assert!(!a.contains("store.img"), "a job boot never gets the store itself");
        let prepare = vm.args(&VmSpec { prepare_store: true, ..spec }).join(" ");
        assert!(prepare.contains("file=/d/vm/store.img,format=raw -device virtio-blk-pci,drive=store"), "{prepare}");
    }
}
