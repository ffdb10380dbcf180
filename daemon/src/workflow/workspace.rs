//! The job's workspace: a copy of the repository the workflow belongs to, as `actions/checkout` would give
//! it — the git metadata and the files git tracks or would track (ignored files such as build output are
//! left out). Outside a git repository the whole directory is copied.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root of `file`: the nearest ancestor with a `.git`; else the directory holding
/// `.github/workflows/` when the file is in one; else the file's own directory.
pub fn repo_root(file: &Path) -> PathBuf {
    let abs = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let mut dir = abs.parent();
    while let Some(d) = dir {
        if d.join(".git").exists() {
            return d.to_path_buf();
        }
        dir = d.parent();
    }
    let parent = abs.parent().unwrap_or(Path::new("/"));
    if parent.ends_with(".github/workflows")
        && let Some(root) = parent.parent().and_then(Path::parent)
    {
        return root.to_path_buf();
    }
    parent.to_path_buf()
}

/// Files git would check out (tracked, plus untracked files that are not ignored), relative to `root`.
fn git_files(root: &Path) -> Option<Vec<PathBuf>> {
    if !root.join(".git").exists() {
        return None;
    }
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        out.stdout
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| PathBuf::from(String::from_utf8_lossy(s).into_owned()))
            .collect(),
    )
}

/// Copies the repository at `root` into `dst` (which must exist); returns the number of files copied.
/// Paths under `skip` (ephemerd's own data dir, should it lie inside the tree) are left out.
pub fn copy_repository(root: &Path, dst: &Path, skip: &[PathBuf]) -> io::Result<usize> {
    match git_files(root) {
        Some(files) => {
            let mut n = copy_tree(&root.join(".git"), &dst.join(".git"), skip)?;
            for rel in files {
                let src = root.join(&rel);
                if skip.iter().any(|s| src.starts_with(s)) {
                    continue;
                }
                let meta = match std::fs::symlink_metadata(&src) {
                    Ok(m) => m,
                    // Listed by git but deleted in the work tree.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                let to = dst.join(&rel);
                if let Some(p) = to.parent() {
                    std::fs::create_dir_all(p)?;
                }
                copy_entry(&src, &to, &meta)?;
                n += 1;
            }
            Ok(n)
        }
        None => copy_tree(root, dst, skip),
    }
}

fn copy_entry(src: &Path, to: &Path, meta: &std::fs::Metadata) -> io::Result<()> {
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(src)?;
        #[cfg(unix)]
        return std::os::unix::fs::symlink(target, to);
        #[cfg(windows)]
        return std::os::windows::fs::symlink_file(target, to);
    } else if meta.is_file() {
        std::fs::copy(src, to).map(drop)
    } else {
        Ok(())
    }
}

/// Copies a directory tree (files, dirs, symlinks; permissions kept), leaving out paths under `skip`.
pub fn copy_tree(src: &Path, dst: &Path, skip: &[PathBuf]) -> io::Result<usize> {
    std::fs::create_dir_all(dst)?;
    let mut n = 0;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        if skip.iter().any(|s| entry.path().starts_with(s)) {
            continue;
        }
        let meta = std::fs::symlink_metadata(entry.path())?;
        let to = dst.join(entry.file_name());
        if meta.is_dir() {
            n += copy_tree(&entry.path(), &to, skip)?;
        } else {
            copy_entry(&entry.path(), &to, &meta)?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_what_git_would_check_out() {
        let repo = tempfile::tempdir().unwrap();
        let r = repo.path();
        let git = |args: &[&str]| {
            let ok = Command::new("git").arg("-C").arg(r).args(args).output().unwrap().status.success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        std::fs::write(r.join(".gitignore"), "target/\n").unwrap();
        std::fs::create_dir_all(r.join("src")).unwrap();
        std::fs::create_dir_all(r.join("target")).unwrap();
        std::fs::write(r.join("src/main.sh"), "echo hi").unwrap();
        std::fs::write(r.join("target/big"), "build output").unwrap();
        std::fs::write(r.join("new.txt"), "untracked").unwrap();
        std::os::unix::fs::symlink("src/main.sh", r.join("link")).unwrap();
        git(&["add", "src/main.sh", ".gitignore"]);
        let out = tempfile::tempdir().unwrap();
        copy_repository(r, out.path(), &[]).unwrap();
        let o = out.path();
        assert_eq!(std::fs::read_to_string(o.join("src/main.sh")).unwrap(), "echo hi");
        assert!(o.join("new.txt").exists());
        assert!(o.join(".git/HEAD").exists());
        assert!(!o.join("target").exists(), "ignored files stay out");
        assert_eq!(std::fs::read_link(o.join("link")).unwrap(), PathBuf::from("src/main.sh"));
        assert_eq!(repo_root(&r.join("src/main.sh")), std::fs::canonicalize(r).unwrap());
    }

    #[test]
    fn outside_git_the_tree_around_the_workflow_is_copied_without_skipped_paths() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(root.join(".github/workflows")).unwrap();
        std::fs::create_dir_all(root.join("data/jobs")).unwrap();
        std::fs::write(root.join(".github/workflows/ci.yml"), "jobs: {}").unwrap();
        std::fs::write(root.join("file.txt"), "x").unwrap();
        assert_eq!(repo_root(&root.join(".github/workflows/ci.yml")), root);
        assert_eq!(repo_root(&root.join("file.txt")), root);
        let out = tempfile::tempdir().unwrap();
        copy_repository(&root, out.path(), &[root.join("data")]).unwrap();
        assert!(out.path().join("file.txt").exists() && out.path().join(".github/workflows/ci.yml").exists());
        assert!(!out.path().join("data").exists());
    }
}
