//! The runner tree jobs get at `/actions-runner`: a configured directory, or a release archive downloaded
//! once, checked against its configured SHA-256, unpacked and cached under the data dir by that checksum.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::RunnerConfig;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("runner.url {url}: {message}")]
    Download { url: String, message: String },
    #[error("runner.url {url}: the archive's sha256 is {actual}, but runner.sha256 says {expected}")]
    Checksum { url: String, expected: String, actual: String },
    #[error("runner archive {path}: {message}")]
    Unpack { path: PathBuf, message: String },
}

/// The runner tree to mount: the configured dir, the cached unpacked archive, or `None`.
pub async fn ensure(cfg: &RunnerConfig, cache: &Path) -> Result<Option<PathBuf>, RunnerError> {
    let (Some(url), Some(sha)) = (&cfg.url, &cfg.sha256) else { return Ok(cfg.dir.clone()) };
    let sha = sha.to_ascii_lowercase();
    let dir = cache.join(&sha);
    if dir.join(".complete").exists() {
        return Ok(Some(dir));
    }
    let dl_err = |message: String| RunnerError::Download { url: url.clone(), message };
    std::fs::create_dir_all(cache).map_err(|e| dl_err(e.to_string()))?;
    let archive = cache.join(format!("{sha}.tar.gz.part"));
    crate::install_tls_provider();
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|e| dl_err(e.to_string()))?;
    let mut resp = client.get(url).send().await.map_err(|e| dl_err(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(dl_err(format!("HTTP {}", resp.status())));
    }
    let mut file = std::fs::File::create(&archive).map_err(|e| dl_err(e.to_string()))?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| dl_err(e.to_string()))? {
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(|e| dl_err(e.to_string()))?;
    }
    drop(file);
    let actual = hex::encode(hasher.finalize());
    if actual != sha {
        let _ = std::fs::remove_file(&archive);
        return Err(RunnerError::Checksum { url: url.clone(), expected: sha, actual });
    }
    let (a, d) = (archive.clone(), dir.clone());
    tokio::task::spawn_blocking(move || unpack(&a, &d))
        .await
        .map_err(|e| RunnerError::Unpack { path: archive.clone(), message: e.to_string() })??;
    let _ = std::fs::remove_file(&archive);
    Ok(Some(dir))
}

fn unpack(archive: &Path, dir: &Path) -> Result<(), RunnerError> {
    let err = |message: String| RunnerError::Unpack { path: archive.to_path_buf(), message };
    let tmp = dir.with_extension("unpacking");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| err(e.to_string()))?;
    let f = std::fs::File::open(archive).map_err(|e| err(e.to_string()))?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    ar.set_preserve_permissions(true);
    ar.unpack(&tmp).map_err(|e| err(e.to_string()))?;
    std::fs::write(tmp.join(".complete"), b"").map_err(|e| err(e.to_string()))?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir).map_err(|e| err(e.to_string()))
}
