//! The instance: one data dir, driven by one ephemerd at a time (the data dir's flock). Its id, eight hex
//! digits of the SHA-256 of the data dir's canonical path, is in the name of every host object ephemerd
//! makes outside its data dir: the iptables chains and rule tags, the NAT rule, the CNI network (and so its
//! address leases), the cgroup parent and the bridge's alias. An instance finds, reconciles and removes
//! only objects that carry its own id, so two instances on one machine never touch each other's jobs.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::platform::DataDirs;

/// The ids of one instance's user-namespace range.
pub const UID_RANGE: u32 = 65_536;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    id: String,
    data_dir: PathBuf,
}

impl Instance {
    pub fn of(dirs: &DataDirs) -> Self {
        Self::at(&dirs.root)
    }

    /// The instance of the data dir at `root` (canonicalised when it exists, so two spellings of one
    /// directory are one instance).
    pub fn at(root: &Path) -> Self {
        let data_dir = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let digest = Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
        Self { id: hex::encode(&digest[..4]), data_dir }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The chain hooked first into INPUT: what jobs may reach on the host.
    pub fn chain_input(&self) -> String {
        format!("EPHEMERD-{}-IN", self.id)
    }

    /// The chain hooked first into FORWARD: what jobs may reach through the host.
    pub fn chain_forward(&self) -> String {
        format!("EPHEMERD-{}-FWD", self.id)
    }

    /// The start of every job rule's comment; the job id follows.
    pub fn tag_prefix(&self) -> String {
        format!("ephemerd-{}-job=", self.id)
    }

    pub fn job_tag(&self, job_id: &str) -> String {
        format!("{}{job_id}", self.tag_prefix())
    }

    /// The comment of the instance's MASQUERADE rule.
    pub fn nat_tag(&self) -> String {
        format!("ephemerd-{}-nat", self.id)
    }

    /// The CNI network name (host-local keeps its leases in a directory of this name).
    pub fn cni_network(&self) -> String {
        format!("ephemerd-{}", self.id)
    }

    /// The cgroup every job's cgroup lives under (`<parent>/<job id>` in each hierarchy).
    pub fn cgroup_parent(&self) -> String {
        format!("/ephemerd-{}", self.id)
    }

    /// The first host uid (and gid) of the instance's user-namespace range: 65536 ids from 2^30 up, one
    /// range per instance (by its id), far above the ids of users and of /etc/subuid's usual ranges.
    pub fn uid_base(&self) -> u32 {
        let slot = u32::from_str_radix(&self.id, 16).unwrap_or(0) % 1024;
        (1 << 30) + slot * UID_RANGE
    }

    /// The cgroup parent's directory in every mounted hierarchy (v1: one per controller; v2: one).
    pub fn cgroup_parent_dirs(&self) -> Vec<PathBuf> {
        let root = Path::new("/sys/fs/cgroup");
        let parent = self.cgroup_parent();
        let rel = parent.trim_start_matches('/');
        if root.join("cgroup.controllers").exists() {
            return vec![root.join(rel)];
        }
        std::fs::read_dir(root)
            .map(|rd| rd.flatten().map(|e| e.path().join(rel)).filter(|p| p.is_dir()).collect())
            .unwrap_or_default()
    }

    /// Removes the cgroup parent wherever it is empty (runc makes it and leaves it). A parent that still
    /// holds a job's cgroup stays.
    pub fn remove_cgroup_parents(&self) {
        for dir in self.cgroup_parent_dirs() {
            if let Err(e) = std::fs::remove_dir(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::debug!(dir = %dir.display(), error = %e, "cgroup parent kept");
            }
        }
    }

    /// What the bridge's alias says while this instance owns it (an alias holds at most 255 bytes).
    pub fn bridge_alias(&self) -> String {
        let mut a = format!("ephemerd {} {}", self.id, self.data_dir.display());
        if a.len() > 255 {
            let mut end = 255;
            while !a.is_char_boundary(end) {
                end -= 1;
            }
            a.truncate(end);
        }
        a
    }

    /// Whether a bridge alias names this instance.
    pub fn owns_alias(&self, alias: &str) -> bool {
        alias.split_whitespace().nth(1) == Some(self.id.as_str()) && alias.starts_with("ephemerd ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_instance_and_fit_the_kernel() {
        let a = Instance::at(Path::new("/var/lib/ephemerd"));
        let b = Instance::at(Path::new("/var/lib/ephemerd-2"));
        assert_ne!(a.id(), b.id());
        assert_eq!(a, Instance::at(Path::new("/var/lib/ephemerd")), "the id is stable");
        assert_eq!(a.id().len(), 8);
        // iptables chain names hold at most 28 characters.
        assert!(a.chain_forward().len() <= 28 && a.chain_input().len() <= 28);
        assert!(a.job_tag("j1").starts_with(&a.tag_prefix()) && a.job_tag("j1").ends_with("=j1"));
        assert!(!b.job_tag("j1").starts_with(&a.tag_prefix()));
        assert!(a.owns_alias(&a.bridge_alias()) && !b.owns_alias(&a.bridge_alias()));
        assert!(!a.owns_alias("") && !a.owns_alias("something else"));
        assert!(a.uid_base() >= 1 << 30 && a.uid_base().is_multiple_of(65536));
        assert!(a.uid_base().checked_add(65536 * 1024).is_some());
        let long = Instance::at(&PathBuf::from(format!("/{}", "é".repeat(300))));
        assert!(long.bridge_alias().len() <= 255 && long.owns_alias(&long.bridge_alias()));
    }

    #[test]
    fn two_spellings_of_one_dir_are_one_instance() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("x")).unwrap();
        assert_eq!(Instance::at(d.path()), Instance::at(&d.path().join("x/..")));
    }
}
