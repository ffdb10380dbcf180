//! `ephemerd image import|pull`.

use std::path::Path;

use ephemerd::config::Config;
use ephemerd::platform::DataDirs;
use ephemerd::runtime::containerd::image::normalize;

use super::{EXIT_INTERRUPTED, Session, out, progress_printer, unless_interrupted, usage};

pub async fn import(file: &Path, remap_ahead: bool, cfg: Config, dirs: DataDirs) -> anyhow::Result<u8> {
    if !file.is_file() {
        return Err(usage(format!("image archive {} does not exist", file.display())));
    }
    let s = Session::start(&cfg, &dirs).await?;
    let progress = progress_printer(format!("Importing {}", file.display()));
    let imported = async {
        let images = s.runtime.images.import(file, &progress).await?;
        if remap_ahead {
            for img in &images {
                s.runtime.remap_ahead(img).await.map_err(|e| {
                    anyhow::Error::new(e).context(format!("remapping {} for user namespaces", img.name))
                })?;
            }
        }
        Ok::<_, anyhow::Error>(images)
    };
    let r = unless_interrupted(imported).await;
    s.stop().await;
    let Some(r) = r? else { return Ok(EXIT_INTERRUPTED) };
    for img in r? {
        out!("{}", img.name);
    }
    Ok(0)
}

pub async fn pull(reference: &str, cfg: Config, dirs: DataDirs) -> anyhow::Result<u8> {
    normalize(reference).map_err(usage)?;
    let s = Session::start(&cfg, &dirs).await?;
    let progress = progress_printer(format!("Pulling {reference}"));
    let r = unless_interrupted(s.runtime.images.pull(reference, &progress)).await;
    s.stop().await;
    let Some(r) = r? else { return Ok(EXIT_INTERRUPTED) };
    out!("{}", r?.name);
    Ok(0)
}
