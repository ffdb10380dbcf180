//! Images: pull from an OCI registry (https, or plain http for loopback and configured registries;
//! anonymous, basic or token auth) or import an OCI image archive, into containerd's content store;
//! unpack through its snapshot and diff services (containerd 1.6 has no transfer service); look images up.
//! Blobs already in the store are never downloaded again. Progress is reported as bytes done / total.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ephemerd_proto::ctr::diff::v1::ApplyRequest;
use ephemerd_proto::ctr::images::v1::{CreateImageRequest, GetImageRequest, Image as CtrImage, UpdateImageRequest};
use ephemerd_proto::ctr::snapshots::v1::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use ephemerd_proto::ctr::types::Descriptor;
use oci_client::Reference;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;
use tracing::{debug, info};

use super::client::{Containerd, CtrError, SNAPSHOTTER, status_message};
use super::content::{self, Blob, ContentError, Opened};
use crate::config::RegistryConfig;

pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference `{reference}`: {message}")]
    Reference { reference: String, message: String },
    #[error("pulling {reference}: {message}")]
    Registry { reference: String, message: String },
    #[error("image {reference}: {message}")]
    Invalid { reference: String, message: String },
    #[error("image {0} is not in the local store (pull or import it first)")]
    Missing(String),
    #[error("unpacking {reference}: {message}")]
    Unpack { reference: String, message: String },
    #[error("image archive {path}: {message}")]
    Archive { path: PathBuf, message: String },
    #[error("registry password for {registry}: environment variable {var} is not set")]
    MissingSecret { registry: String, var: String },
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Ctr(#[from] CtrError),
}

/// An error with its chain of causes ("error sending request: connection refused"), each said once.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

pub use crate::target::{Progress, ProgressFn};

/// An image ready to run: its name, config and the chain id of its unpacked top layer.
#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub manifest_digest: String,
    pub config: ImageConfiguration,
    pub chain_id: String,
}

/// Pulls, imports and unpacks images; serialises unpacks so concurrent jobs never race on a layer.
pub struct Images {
    ctr: Containerd,
    registries: BTreeMap<String, RegistryConfig>,
    unpack_lock: Mutex<()>,
}

/// The OCI name of the host's architecture.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// Normalises a reference the way containerd's tools name images (`docker.io/library/debian:bookworm`).
pub fn normalize(reference: &str) -> Result<Reference, ImageError> {
    reference
        .parse::<Reference>()
        .map_err(|e| ImageError::Reference { reference: reference.to_string(), message: e.to_string() })
}

/// Loopback registries speak plain HTTP, as do the ones configured `insecure`.
pub fn is_plain_http(registry: &str, cfg: Option<&RegistryConfig>) -> bool {
    if cfg.is_some_and(|c| c.insecure) {
        return true;
    }
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.rsplit_once(':').map(|(h, _)| h).unwrap_or(registry)
    };
    host == "localhost" || host == "::1" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Chain ids from diff ids: `C0 = D0`, `Ci = sha256(C(i-1) + " " + Di)`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!("sha256:{}", hex::encode(Sha256::digest(format!("{prev} {d}").as_bytes()))),
        };
        out.push(next);
    }
    out
}

/// Picks the manifest for this host from an index (skipping attestation entries).
pub fn select_platform(index: &ImageIndex) -> Option<&oci_spec::image::Descriptor> {
    index.manifests().iter().find(|m| {
        m.platform()
            .as_ref()
            .is_some_and(|p| p.os().to_string() == "linux" && p.architecture().to_string() == host_arch())
    })
}

fn media_type_of(raw: &[u8], declared: &str) -> String {
    if !declared.is_empty() {
        return declared.to_string();
    }
    let v: serde_json::Value = serde_json::from_slice(raw).unwrap_or_default();
    if let Some(mt) = v.get("mediaType").and_then(|m| m.as_str()) {
        return mt.to_string();
    }
    if v.get("manifests").is_some() { MT_OCI_INDEX.into() } else { MT_OCI_MANIFEST.into() }
}

fn is_index(mt: &str) -> bool {
    mt == MT_OCI_INDEX || mt == MT_DOCKER_LIST
}

fn sha256_of(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Where blobs come from: a registry or an archive on disk.
enum Source<'a> {
    Registry { client: &'a oci_client::Client, reference: &'a Reference },
    Archive { path: &'a Path, entries: &'a HashMap<String, (u64, u64)> },
}

impl Source<'_> {
    async fn reader(&self, blob: &Blob) -> Result<Box<dyn tokio::io::AsyncRead + Unpin + Send>, ImageError> {
        match self {
            Source::Registry { client, reference } => {
                let s = client.pull_blob_stream(reference, blob.digest.as_str()).await.map_err(|e| {
                    ImageError::Registry {
                        reference: reference.whole(),
                        message: format!("blob {}: {}", blob.digest, with_causes(&e)),
                    }
                })?;
                Ok(Box::new(tokio_util::io::StreamReader::new(s.stream)))
            }
            Source::Archive { path, entries } => {
                let (offset, size) = archive_entry(path, entries, &blob.digest)?;
                let mut f = std::fs::File::open(path)
                    .map_err(|e| ImageError::Archive { path: path.to_path_buf(), message: e.to_string() })?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(|e| ImageError::Archive { path: path.to_path_buf(), message: e.to_string() })?;
                use tokio::io::AsyncReadExt;
                Ok(Box::new(tokio::fs::File::from_std(f).take(size)))
            }
        }
    }
}

fn archive_entry(path: &Path, entries: &HashMap<String, (u64, u64)>, digest: &str) -> Result<(u64, u64), ImageError> {
    let key = format!("blobs/{}", digest.replacen(':', "/", 1));
    entries.get(&key).copied().ok_or_else(|| ImageError::Archive {
        path: path.to_path_buf(),
        message: format!("blob {digest} is referenced but not in the archive"),
    })
}

impl Images {
    pub fn new(ctr: Containerd, registries: BTreeMap<String, RegistryConfig>) -> Self {
        crate::install_tls_provider();
        Self { ctr, registries, unpack_lock: Mutex::new(()) }
    }

    /// The image if it is stored and unpacked; else pulls it.
    pub async fn ensure(&self, reference: &str, progress: &ProgressFn) -> Result<Image, ImageError> {
        let name = normalize(reference)?.whole();
        match self.resolve(&name).await {
            Ok(img) => Ok(img),
            Err(ImageError::Missing(_)) => self.pull(reference, progress).await,
            Err(e) => Err(e),
        }
    }

    /// Looks a stored image up; it must be unpacked (an image stored but not unpacked is unpacked now).
    pub async fn resolve(&self, name: &str) -> Result<Image, ImageError> {
        let img = match self.ctr.images().get(self.ctr.req(GetImageRequest { name: name.to_string() })).await {
            Ok(r) => r.into_inner().image,
            Err(s) if s.code() == tonic::Code::NotFound => None,
            Err(s) => return Err(CtrError::rpc("get image")(s).into()),
        };
        let target = img.and_then(|i| i.target).ok_or_else(|| ImageError::Missing(name.to_string()))?;
        let mut manifest_digest = target.digest.clone();
        let mut raw = content::read_all(&self.ctr, &manifest_digest).await?;
        if is_index(&media_type_of(&raw, &target.media_type)) {
            let index: ImageIndex = parse_json(name, &raw)?;
            let m = select_platform(&index).ok_or_else(|| ImageError::Invalid {
                reference: name.to_string(),
                message: format!("no linux/{} image in the index", host_arch()),
            })?;
            manifest_digest = m.digest().to_string();
            raw = content::read_all(&self.ctr, &manifest_digest).await?;
        }
        let manifest: ImageManifest = parse_json(name, &raw)?;
        let config: ImageConfiguration =
            parse_json(name, &content::read_all(&self.ctr, manifest.config().digest().as_ref()).await?)?;
        let chain_id = self.unpack(name, &manifest, &config).await?;
        Ok(Image { name: name.to_string(), manifest_digest, config, chain_id })
    }

    fn registry_auth(&self, registry: &str) -> Result<RegistryAuth, ImageError> {
        let Some(cfg) = self.registries.get(registry) else { return Ok(RegistryAuth::Anonymous) };
        match (&cfg.username, &cfg.password_env) {
            (Some(u), Some(var)) => match std::env::var(var) {
                Ok(p) => Ok(RegistryAuth::Basic(u.clone(), p)),
                Err(_) => Err(ImageError::MissingSecret { registry: registry.to_string(), var: var.clone() }),
            },
            (Some(u), None) => Ok(RegistryAuth::Basic(u.clone(), String::new())),
            _ => Ok(RegistryAuth::Anonymous),
        }
    }

    /// Pulls `reference` from its registry, stores and unpacks it.
    pub async fn pull(&self, reference: &str, progress: &ProgressFn) -> Result<Image, ImageError> {
        let r = normalize(reference)?;
        let name = r.whole();
        let registry = r.registry().to_string();
        let plain = is_plain_http(&registry, self.registries.get(&registry));
        let client = oci_client::Client::new(ClientConfig {
            protocol: if plain { ClientProtocol::Http } else { ClientProtocol::Https },
            connect_timeout: Some(Duration::from_secs(15)),
            read_timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        });
        let auth = self.registry_auth(&registry)?;
        let reg_err = |e: oci_client::errors::OciDistributionError| ImageError::Registry {
            reference: name.clone(),
            message: with_causes(&e),
        };
        info!(image = %name, plain_http = plain, "pulling image");
        let accepted = [MT_OCI_INDEX, MT_OCI_MANIFEST, MT_DOCKER_LIST, MT_DOCKER_MANIFEST];
        let (raw, digest) = client.pull_manifest_raw(&r, &auth, &accepted).await.map_err(reg_err)?;
        let source = Source::Registry { client: &client, reference: &r };
        let mut top = RawDoc { media_type: media_type_of(&raw, ""), digest, raw: raw.to_vec() };
        let mut index_doc = None;
        if is_index(&top.media_type) {
            let index: ImageIndex = parse_json(&name, &top.raw)?;
            let m = select_platform(&index).ok_or_else(|| ImageError::Invalid {
                reference: name.clone(),
                message: format!("no linux/{} image in the index", host_arch()),
            })?;
            let by_digest: Reference = format!("{}/{}@{}", r.registry(), r.repository(), m.digest()).parse().map_err(
                |e: oci_spec::distribution::ParseError| ImageError::Reference {
                    reference: name.clone(),
                    message: e.to_string(),
                },
            )?;
            let (mraw, mdigest) = client.pull_manifest_raw(&by_digest, &auth, &accepted).await.map_err(reg_err)?;
            let child = RawDoc {
                media_type: media_type_of(&mraw, m.media_type().as_ref()),
                digest: mdigest,
                raw: mraw.to_vec(),
            };
            index_doc = Some(std::mem::replace(&mut top, child));
        }
        self.store(&name, &source, index_doc, top, progress).await
    }

    /// Imports every image of an OCI image archive (a tar of an OCI image layout).
    pub async fn import(&self, path: &Path, progress: &ProgressFn) -> Result<Vec<Image>, ImageError> {
        let arch_err = |message: String| ImageError::Archive { path: path.to_path_buf(), message };
        let p = path.to_path_buf();
        let entries =
            tokio::task::spawn_blocking(move || scan_archive(&p)).await.map_err(|e| arch_err(e.to_string()))??;
        let read_entry = |name: &str| -> Result<Vec<u8>, ImageError> {
            let (off, size) =
                entries.get(name).copied().ok_or_else(|| arch_err(format!("no {name} in the archive")))?;
            let mut f = std::fs::File::open(path).map_err(|e| arch_err(e.to_string()))?;
            f.seek(SeekFrom::Start(off)).map_err(|e| arch_err(e.to_string()))?;
            let mut buf = Vec::with_capacity(size as usize);
            f.take(size).read_to_end(&mut buf).map_err(|e| arch_err(e.to_string()))?;
            Ok(buf)
        };
        let index: ImageIndex =
            serde_json::from_slice(&read_entry("index.json")?).map_err(|e| arch_err(format!("index.json: {e}")))?;
        let source = Source::Archive { path, entries: &entries };
        let mut images = Vec::new();
        for entry in index.manifests() {
            let ann = entry.annotations().clone().unwrap_or_default();
            let name = ann
                .get("io.containerd.image.name")
                .cloned()
                .or_else(|| ann.get("org.opencontainers.image.ref.name").filter(|n| n.contains('/')).cloned())
                .ok_or_else(|| {
                    arch_err(format!(
                        "manifest {} has no image name (annotation io.containerd.image.name)",
                        entry.digest()
                    ))
                })?;
            let name = normalize(&name)?.whole();
            let blob_path = format!("blobs/{}", entry.digest().to_string().replacen(':', "/", 1));
            let raw = read_entry(&blob_path)?;
            let digest = entry.digest().to_string();
            if sha256_of(&raw) != digest {
                return Err(arch_err(format!("{blob_path} does not match its digest")));
            }
            let mut top = RawDoc { media_type: media_type_of(&raw, entry.media_type().as_ref()), digest, raw };
            let mut index_doc = None;
            if is_index(&top.media_type) {
                let nested: ImageIndex = parse_json(&name, &top.raw)?;
                let m = select_platform(&nested)
                    .ok_or_else(|| arch_err(format!("{name}: no linux/{} image", host_arch())))?;
                let mpath = format!("blobs/{}", m.digest().to_string().replacen(':', "/", 1));
                let mraw = read_entry(&mpath)?;
                let child = RawDoc {
                    media_type: media_type_of(&mraw, m.media_type().as_ref()),
                    digest: m.digest().to_string(),
                    raw: mraw,
                };
                index_doc = Some(std::mem::replace(&mut top, child));
            }
            info!(image = %name, archive = %path.display(), "importing image");
            images.push(self.store(&name, &source, index_doc, top, progress).await?);
        }
        if images.is_empty() {
            return Err(arch_err("index.json lists no images".into()));
        }
        Ok(images)
    }

    /// Writes config, layers, manifest (and index) under a lease with their GC labels, unpacks, and
    /// records the image.
    async fn store(
        &self,
        name: &str,
        source: &Source<'_>,
        index: Option<RawDoc>,
        manifest_doc: RawDoc,
        progress: &ProgressFn,
    ) -> Result<Image, ImageError> {
        let manifest: ImageManifest = parse_json(name, &manifest_doc.raw)?;
        let cfg_desc = manifest.config();
        let config_blob = Blob {
            digest: cfg_desc.digest().to_string(),
            size: cfg_desc.size() as i64,
            media_type: cfg_desc.media_type().to_string(),
        };
        let layers: Vec<Blob> = manifest
            .layers()
            .iter()
            .map(|l| Blob {
                digest: l.digest().to_string(),
                size: l.size() as i64,
                media_type: l.media_type().to_string(),
            })
            .collect();
        let total: u64 = std::iter::once(&config_blob).chain(&layers).map(|b| b.size.max(0) as u64).sum();
        let done = std::sync::atomic::AtomicU64::new(0);
        let tick = |n: u64| {
            let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            progress(Progress { done: d, total });
        };
        progress(Progress { done: 0, total });

        let lease = self.ctr.create_lease("pull", Duration::from_secs(3600)).await?;
        let result = async {
            // Children first: layers, config, then the manifest and index that reference them.
            for b in std::iter::once(&config_blob).chain(&layers) {
                self.write(source, b, HashMap::new(), &tick, &lease).await?;
            }
            let mut mlabels =
                HashMap::from([("containerd.io/gc.ref.content.config".to_string(), config_blob.digest.clone())]);
            for (i, l) in layers.iter().enumerate() {
                mlabels.insert(format!("containerd.io/gc.ref.content.l.{i}"), l.digest.clone());
            }
            self.write_doc(&manifest_doc, mlabels, &lease).await?;
            let target = match &index {
                Some(ix) => {
                    let labels =
                        HashMap::from([("containerd.io/gc.ref.content.m.0".to_string(), manifest_doc.digest.clone())]);
                    self.write_doc(ix, labels, &lease).await?;
                    ix
                }
                None => &manifest_doc,
            };
            let config: ImageConfiguration =
                parse_json(name, &content::read_all(&self.ctr, &config_blob.digest).await?)?;
            let chain_id = self.unpack_with_lease(name, &manifest, &config, &lease).await?;
            self.record(name, target).await?;
            Ok::<_, ImageError>(Image {
                name: name.to_string(),
                manifest_digest: manifest_doc.digest.clone(),
                config,
                chain_id,
            })
        }
        .await;
        self.ctr.delete_lease(&lease).await;
        result
    }

    async fn write(
        &self,
        source: &Source<'_>,
        blob: &Blob,
        labels: HashMap<String, String>,
        tick: &(dyn Fn(u64) + Send + Sync),
        lease: &str,
    ) -> Result<(), ImageError> {
        match content::open(&self.ctr, lease, blob).await? {
            Opened::Present => {
                debug!(digest = %blob.digest, "blob already stored");
                tick(blob.size.max(0) as u64);
                content::set_labels(&self.ctr, &blob.digest, labels).await?;
            }
            Opened::Writer(w) => {
                let reader = source.reader(blob).await?;
                w.copy_from(reader, labels, tick).await?;
            }
        }
        Ok(())
    }

    async fn write_doc(&self, doc: &RawDoc, labels: HashMap<String, String>, lease: &str) -> Result<(), ImageError> {
        let blob = Blob { digest: doc.digest.clone(), size: doc.raw.len() as i64, media_type: doc.media_type.clone() };
        match content::open(&self.ctr, lease, &blob).await? {
            Opened::Present => content::set_labels(&self.ctr, &blob.digest, labels).await?,
            Opened::Writer(w) => w.copy_from(std::io::Cursor::new(doc.raw.clone()), labels, &|_| {}).await?,
        }
        Ok(())
    }

    async fn record(&self, name: &str, target: &RawDoc) -> Result<(), ImageError> {
        let image = CtrImage {
            name: name.to_string(),
            target: Some(Descriptor {
                media_type: target.media_type.clone(),
                digest: target.digest.clone(),
                size: target.raw.len() as i64,
                annotations: HashMap::new(),
            }),
            ..Default::default()
        };
        let images = self.ctr.images();
        match images
            .clone()
            .create(self.ctr.req(CreateImageRequest { image: Some(image.clone()), ..Default::default() }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                let mask = prost_types::FieldMask { paths: vec!["target".into()] };
                images
                    .clone()
                    .update(self.ctr.req(UpdateImageRequest {
                        image: Some(image),
                        update_mask: Some(mask),
                        ..Default::default()
                    }))
                    .await
                    .map_err(CtrError::rpc("update image"))?;
                Ok(())
            }
            Err(s) => Err(CtrError::rpc("create image")(s).into()),
        }
    }

    async fn unpack(
        &self,
        name: &str,
        manifest: &ImageManifest,
        config: &ImageConfiguration,
    ) -> Result<String, ImageError> {
        let lease = self.ctr.create_lease("unpack", Duration::from_secs(3600)).await?;
        let r = self.unpack_with_lease(name, manifest, config, &lease).await;
        self.ctr.delete_lease(&lease).await;
        r
    }

    /// Applies every layer as a committed snapshot named by its chain id; returns the top chain id.
    async fn unpack_with_lease(
        &self,
        name: &str,
        manifest: &ImageManifest,
        config: &ImageConfiguration,
        lease: &str,
    ) -> Result<String, ImageError> {
        let unpack_err = |message: String| ImageError::Unpack { reference: name.to_string(), message };
        let diff_ids: Vec<String> = config.rootfs().diff_ids().clone();
        if diff_ids.len() != manifest.layers().len() {
            return Err(unpack_err(format!(
                "config lists {} diff ids for {} layers",
                diff_ids.len(),
                manifest.layers().len()
            )));
        }
        if config.os().to_string() != "linux" {
            return Err(unpack_err(format!("image is for {}, not linux", config.os())));
        }
        let chains = chain_ids(&diff_ids);
        let Some(top) = chains.last().cloned() else { return Err(unpack_err("image has no layers".into())) };
        let _guard = self.unpack_lock.lock().await;
        let snaps = self.ctr.snapshots();
        let stat = |key: String| {
            let mut s = snaps.clone();
            let req = self.ctr.leased(StatSnapshotRequest { snapshotter: SNAPSHOTTER.into(), key }, lease);
            async move { s.stat(req).await }
        };
        if stat(top.clone()).await.is_ok() {
            self.label_config(manifest, &top).await?;
            return Ok(top);
        }
        for (i, layer) in manifest.layers().iter().enumerate() {
            let chain = &chains[i];
            if stat(chain.clone()).await.is_ok() {
                continue;
            }
            let parent = if i == 0 { String::new() } else { chains[i - 1].clone() };
            let key = format!("extract-{}-{}", rand::random::<u32>(), chain);
            let labels = HashMap::from([("containerd.io/snapshot.ref".to_string(), chain.clone())]);
            let prep = snaps
                .clone()
                .prepare(self.ctr.leased(
                    PrepareSnapshotRequest {
                        snapshotter: SNAPSHOTTER.into(),
                        key: key.clone(),
                        parent,
                        labels: labels.clone(),
                    },
                    lease,
                ))
                .await;
            let mounts = match prep {
                Ok(r) => r.into_inner().mounts,
                Err(s) if s.code() == tonic::Code::AlreadyExists => continue,
                Err(s) => return Err(unpack_err(format!("prepare layer {i}: {}", status_message(&s)))),
            };
            let desc = Descriptor {
                media_type: layer.media_type().to_string(),
                digest: layer.digest().to_string(),
                size: layer.size() as i64,
                annotations: HashMap::new(),
            };
            let remove = || {
                let mut s = snaps.clone();
                let req = self.ctr.req(RemoveSnapshotRequest { snapshotter: SNAPSHOTTER.into(), key: key.clone() });
                async move {
                    let _ = s.remove(req).await;
                }
            };
            let applied = self
                .ctr
                .diff()
                .apply(self.ctr.leased(ApplyRequest { diff: Some(desc), mounts, ..Default::default() }, lease))
                .await;
            let applied = match applied {
                Ok(r) => r.into_inner().applied.map(|d| d.digest).unwrap_or_default(),
                Err(s) => {
                    remove().await;
                    return Err(unpack_err(format!("apply layer {}: {}", layer.digest(), status_message(&s))));
                }
            };
            if applied != diff_ids[i] {
                remove().await;
                return Err(unpack_err(format!(
                    "layer {} unpacked to {applied}, but the config says {}",
                    layer.digest(),
                    diff_ids[i]
                )));
            }
            let commit = snaps
                .clone()
                .commit(self.ctr.leased(
                    CommitSnapshotRequest {
                        snapshotter: SNAPSHOTTER.into(),
                        name: chain.clone(),
                        key: key.clone(),
                        labels,
                    },
                    lease,
                ))
                .await;
            match commit {
                Ok(_) => {}
                Err(s) if s.code() == tonic::Code::AlreadyExists => remove().await,
                Err(s) => {
                    remove().await;
                    return Err(unpack_err(format!("commit layer {i}: {}", status_message(&s))));
                }
            }
            let ul = HashMap::from([("containerd.io/uncompressed".to_string(), diff_ids[i].clone())]);
            content::set_labels(&self.ctr, layer.digest().as_ref(), ul).await?;
        }
        self.label_config(manifest, &top).await?;
        Ok(top)
    }

    async fn label_config(&self, manifest: &ImageManifest, top: &str) -> Result<(), ImageError> {
        let labels = HashMap::from([(format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}"), top.to_string())]);
        content::set_labels(&self.ctr, manifest.config().digest().as_ref(), labels).await?;
        Ok(())
    }
}

struct RawDoc {
    media_type: String,
    digest: String,
    raw: Vec<u8>,
}

fn parse_json<T: serde::de::DeserializeOwned>(name: &str, raw: &[u8]) -> Result<T, ImageError> {
    serde_json::from_slice(raw).map_err(|e| ImageError::Invalid { reference: name.to_string(), message: e.to_string() })
}

/// Maps every regular file of a tar archive to its (data offset, size).
fn scan_archive(path: &Path) -> Result<HashMap<String, (u64, u64)>, ImageError> {
    let err = |message: String| ImageError::Archive { path: path.to_path_buf(), message };
    let f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut ar = tar::Archive::new(f);
    let mut out = HashMap::new();
    for entry in ar.entries().map_err(|e| err(format!("not a tar archive: {e}")))? {
        let entry = entry.map_err(|e| err(format!("not a tar archive: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let p = entry.path().map_err(|e| err(e.to_string()))?;
        let key = p.to_string_lossy().trim_start_matches("./").to_string();
        out.insert(key, (entry.raw_file_position(), entry.size()));
    }
    if !out.contains_key("oci-layout") || !out.contains_key("index.json") {
        return Err(err("not an OCI image layout (no oci-layout or index.json)".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("error sending request")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused"));
        assert_eq!(with_causes(&e), "error sending request: connection refused");
        #[derive(Debug, thiserror::Error)]
        #[error("blob: connection refused")]
        struct Repeats(#[source] std::io::Error);
        let e = Repeats(std::io::Error::other("connection refused"));
        assert_eq!(with_causes(&e), "blob: connection refused", "a cause already said is not repeated");
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let d = vec!["sha256:aa".to_string(), "sha256:bb".to_string()];
        let c = chain_ids(&d);
        assert_eq!(c[0], "sha256:aa");
        let expect = format!("sha256:{}", hex::encode(Sha256::digest(b"sha256:aa sha256:bb")));
        assert_eq!(c[1], expect);
    }

    #[test]
    fn plain_http_only_for_loopback_or_configured() {
        assert!(is_plain_http("localhost:5000", None));
        assert!(is_plain_http("127.0.0.1:41234", None));
        assert!(is_plain_http("[::1]:5000", None));
        assert!(!is_plain_http("ghcr.io", None));
        assert!(!is_plain_http("10.0.0.5:5000", None));
        let cfg = RegistryConfig { insecure: true, ..Default::default() };
        assert!(is_plain_http("10.0.0.5:5000", Some(&cfg)));
    }

    #[test]
    fn references_normalise_like_containerd() {
        assert_eq!(normalize("debian:bookworm").unwrap().whole(), "docker.io/library/debian:bookworm");
        assert_eq!(normalize("127.0.0.1:5000/x/y:1").unwrap().whole(), "127.0.0.1:5000/x/y:1");
        assert!(normalize("library/UPPER").is_err());
        assert!(normalize("").is_err());
    }

    #[test]
    fn media_type_is_inferred_when_missing() {
        assert_eq!(media_type_of(br#"{"manifests":[]}"#, ""), MT_OCI_INDEX);
        assert_eq!(media_type_of(br#"{"config":{},"layers":[]}"#, ""), MT_OCI_MANIFEST);
        assert_eq!(media_type_of(b"{}", MT_DOCKER_MANIFEST), MT_DOCKER_MANIFEST);
    }
}
