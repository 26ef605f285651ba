//! The source bundle: a deterministic zip built from the bundle folder, or a prebuilt zip checked as
//! it is. Same input, same bytes: entries sorted, fixed timestamps and modes, '/' separators.

use crate::dockerrun::{self, Dockerrun, Siblings};
use crate::error::{Error, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

/// Beanstalk refuses source bundles above 512 MiB.
pub const MAX_BYTES: u64 = 512 * 1024 * 1024;
const ROOT_FILES: [&str; 4] = [
    dockerrun::FILE,
    "docker-compose.yml",
    "docker-compose.yaml",
    "Dockerfile",
];
const ROOT_DIRS: [&str; 2] = [".ebextensions", ".platform"];

/// One file in the zip.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub size: u64,
    pub executable: bool,
}

/// A zip ready to upload, with its content hash.
#[derive(Debug)]
pub struct Bundle {
    path: PathBuf,
    /// Deletes a zip we built when the bundle is dropped; None for the user's own zip.
    _temp: Option<tempfile::TempPath>,
    pub sha256: String,
    pub size: u64,
    pub entries: Vec<Entry>,
    pub dockerrun: Option<Dockerrun>,
}

impl Bundle {
    /// Where the zip is on disk.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A bundle checked but not yet zipped or hashed: everything that can be wrong with the input is
/// found here, before any AWS call; the slow part ([`Checked::finish`]) can then run alongside them.
#[derive(Debug)]
pub enum Checked {
    /// Files to zip, in order, with their entries.
    Dir {
        files: Vec<(String, PathBuf)>,
        entries: Vec<Entry>,
        dockerrun: Dockerrun,
    },
    /// A prebuilt zip to hash and upload as it is.
    Zip {
        path: PathBuf,
        entries: Vec<Entry>,
        dockerrun: Option<Dockerrun>,
    },
}

impl Checked {
    /// Writes the zip (or hashes the prebuilt one).
    pub fn finish(self) -> Result<Bundle> {
        match self {
            Checked::Dir {
                files,
                entries,
                dockerrun,
            } => {
                let temp = tempfile::Builder::new()
                    .prefix("eb-deploy-")
                    .suffix(".zip")
                    .tempfile()
                    .map_err(|e| io_error("temporary zip", e))?;
                let (file, temp_path) = temp.into_parts();
                write_zip(file, &files, &entries).map_err(|e| io_error("temporary zip", e))?;
                let (sha256, size) =
                    hash_file(&temp_path).map_err(|e| io_error("temporary zip", e))?;
                if size > MAX_BYTES {
                    return Err(too_big("the zip", size));
                }
                Ok(Bundle {
                    path: temp_path.to_path_buf(),
                    _temp: Some(temp_path),
                    sha256,
                    size,
                    entries,
                    dockerrun: Some(dockerrun),
                })
            }
            Checked::Zip {
                path,
                entries,
                dockerrun,
            } => {
                let (sha256, size) =
                    hash_file(&path).map_err(|e| io_error(&path.display().to_string(), e))?;
                Ok(Bundle {
                    path,
                    _temp: None,
                    sha256,
                    size,
                    entries,
                    dockerrun,
                })
            }
        }
    }
}

/// Builds the deterministic zip of `dir` in a temporary file.
pub fn build(dir: &Path) -> Result<Bundle> {
    check_dir(dir)?.finish()
}

/// Checks a prebuilt zip and hashes it.
pub fn prebuilt(path: &Path) -> Result<Bundle> {
    check_zip(path)?.finish()
}

/// Checks the bundle folder: what goes in, links, size, and Dockerrun.aws.json.
pub fn check_dir(dir: &Path) -> Result<Checked> {
    let root = dir.canonicalize().map_err(|e| {
        Error::setting(
            "EB_BUNDLE_DIR",
            "--bundle-dir",
            format!("folder {} cannot be read: {e}", dir.display()),
        )
    })?;
    if !root.is_dir() {
        return Err(Error::setting(
            "EB_BUNDLE_DIR",
            "--bundle-dir",
            format!("{} is not a folder", dir.display()),
        ));
    }
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for name in ROOT_FILES {
        let path = root.join(name);
        if fs::symlink_metadata(&path).is_ok() {
            collect(&root, &path, name.to_string(), &mut files, 0)?;
        }
    }
    if !files.iter().any(|(name, _)| name == dockerrun::FILE) {
        return Err(Error::bundle(
            dockerrun::FILE,
            format!(
                "not found in {} (set EB_BUNDLE_DIR / --bundle-dir to the folder that holds it, \
                 or EB_ZIP_FILE / --zip-file to a prebuilt zip)",
                dir.display()
            ),
        ));
    }
    for name in ROOT_DIRS {
        let path = root.join(name);
        if fs::symlink_metadata(&path).is_ok() {
            collect(&root, &path, name.to_string(), &mut files, 0)?;
        }
    }
    files.sort();

    let mut entries = Vec::with_capacity(files.len());
    let mut total = 0u64;
    for (name, path) in &files {
        let meta = fs::metadata(path).map_err(|e| io_error(name, e))?;
        total += meta.len();
        entries.push(Entry {
            name: name.clone(),
            size: meta.len(),
            executable: meta.permissions().mode() & 0o111 != 0,
        });
    }
    if total > MAX_BYTES {
        return Err(too_big(&dir.display().to_string(), total));
    }
    let siblings = Siblings {
        dockerfile: files.iter().any(|(n, _)| n == "Dockerfile"),
        compose: files.iter().any(|(n, _)| n.starts_with("docker-compose.")),
    };
    let dockerrun_bytes =
        fs::read(root.join(dockerrun::FILE)).map_err(|e| io_error(dockerrun::FILE, e))?;
    let dockerrun = dockerrun::validate(&dockerrun_bytes, siblings)?;
    Ok(Checked::Dir {
        files,
        entries,
        dockerrun,
    })
}

/// Checks a prebuilt zip: size, readable archive, and Dockerrun.aws.json at its root when it has one.
pub fn check_zip(path: &Path) -> Result<Checked> {
    let shown = path.display().to_string();
    let meta = fs::metadata(path).map_err(|e| {
        Error::setting(
            "EB_ZIP_FILE",
            "--zip-file",
            format!("{shown} cannot be read: {e}"),
        )
    })?;
    if !meta.is_file() {
        return Err(Error::setting(
            "EB_ZIP_FILE",
            "--zip-file",
            format!("{shown} is not a file"),
        ));
    }
    if meta.len() > MAX_BYTES {
        return Err(too_big(&shown, meta.len()));
    }
    let file = File::open(path).map_err(|e| io_error(&shown, e))?;
    let mut archive = ZipArchive::new(BufReader::new(file))
        .map_err(|e| Error::bundle(&shown, format!("is not a readable zip archive: {e}")))?;
    let mut entries = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let file = archive
            .by_index_raw(i)
            .map_err(|e| Error::bundle(&shown, format!("entry {i} cannot be read: {e}")))?;
        if file.is_dir() {
            continue;
        }
        let name = file
            .name()
            .map_err(|e| Error::bundle(&shown, format!("entry {i} has a bad name: {e}")))?
            .to_string();
        entries.push(Entry {
            name,
            size: file.size(),
            executable: file.unix_mode().is_some_and(|m| m & 0o111 != 0),
        });
    }
    let has = |name: &str| entries.iter().any(|e| e.name == name);
    let dockerrun = if has(dockerrun::FILE) {
        let mut bytes = Vec::new();
        archive
            .by_name(dockerrun::FILE)
            .and_then(|mut f| f.read_to_end(&mut bytes).map_err(Into::into))
            .map_err(|e| {
                Error::bundle(&shown, format!("{} cannot be read: {e}", dockerrun::FILE))
            })?;
        let siblings = Siblings {
            dockerfile: has("Dockerfile"),
            compose: has("docker-compose.yml") || has("docker-compose.yaml"),
        };
        Some(dockerrun::validate(&bytes, siblings)?)
    } else if let Some(nested) = entries
        .iter()
        .find(|e| e.name.ends_with(&format!("/{}", dockerrun::FILE)))
    {
        return Err(Error::bundle(
            &shown,
            format!(
                "{} is inside a folder ({}); Beanstalk needs it at the root of the zip",
                dockerrun::FILE,
                nested.name
            ),
        ));
    } else {
        None
    };
    Ok(Checked::Zip {
        path: path.to_path_buf(),
        entries,
        dockerrun,
    })
}

/// Adds `path` (a file, a folder, or a link that stays inside `root`) under the zip name `name`.
fn collect(
    root: &Path,
    path: &Path,
    name: String,
    out: &mut Vec<(String, PathBuf)>,
    depth: usize,
) -> Result<()> {
    if depth > 32 {
        return Err(Error::bundle(name, "folders nest too deep (a link loop?)"));
    }
    let meta = fs::symlink_metadata(path).map_err(|e| io_error(&name, e))?;
    let target = if meta.file_type().is_symlink() {
        let target = path.canonicalize().map_err(|e| {
            Error::bundle(
                &name,
                format!("is a symbolic link that cannot be resolved: {e}"),
            )
        })?;
        if !target.starts_with(root) {
            return Err(Error::bundle(
                &name,
                format!(
                    "is a symbolic link to {}, outside the bundle folder; eb-deploy never follows \
                     links out of it",
                    target.display()
                ),
            ));
        }
        target
    } else {
        path.to_path_buf()
    };
    if target.is_dir() {
        let mut children: Vec<_> = fs::read_dir(&target)
            .map_err(|e| io_error(&name, e))?
            .collect::<io::Result<_>>()
            .map_err(|e| io_error(&name, e))?;
        children.sort_by_key(|c| c.file_name());
        for child in children {
            let child_name = child.file_name().into_string().map_err(|raw| {
                Error::bundle(
                    &name,
                    format!("holds a file whose name is not UTF-8: {raw:?}"),
                )
            })?;
            collect(
                root,
                &child.path(),
                format!("{name}/{child_name}"),
                out,
                depth + 1,
            )?;
        }
    } else if target.is_file() {
        out.push((name, target));
    }
    Ok(())
}

fn write_zip(file: File, files: &[(String, PathBuf)], entries: &[Entry]) -> io::Result<()> {
    let mut zip = ZipWriter::new(BufWriter::with_capacity(256 * 1024, file));
    for ((name, path), entry) in files.iter().zip(entries) {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(DateTime::default())
            .unix_permissions(if entry.executable { 0o755 } else { 0o644 })
            .large_file(entry.size >= u32::MAX as u64);
        zip.start_file(name.as_str(), options)?;
        let mut source = File::open(path)?;
        io::copy(&mut source, &mut zip)?;
    }
    zip.finish()?.flush()
}

/// The sha256 (hex) and size of a file, read in a streaming pass.
pub fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn io_error(what: &str, e: io::Error) -> Error {
    Error::bundle(what, format!("cannot be read: {e}"))
}

fn too_big(what: &str, size: u64) -> Error {
    Error::bundle(
        what,
        format!(
            "bundle is {:.1} MiB; Beanstalk accepts at most 512 MiB",
            size as f64 / 1024.0 / 1024.0
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const MULTI: &str = include_str!("../examples/multi-docker/Dockerrun.aws.json");

    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(dockerrun::FILE), MULTI).unwrap();
        dir
    }

    #[test]
    fn same_input_same_bytes_and_sorted_entries() {
        let dir = folder();
        let hooks = dir.path().join(".platform/hooks/predeploy");
        fs::create_dir_all(&hooks).unwrap();
        fs::write(hooks.join("01-run.sh"), "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(hooks.join("01-run.sh"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::create_dir_all(dir.path().join(".ebextensions")).unwrap();
        fs::write(dir.path().join(".ebextensions/b.config"), "b").unwrap();
        fs::write(dir.path().join(".ebextensions/a.config"), "a").unwrap();
        fs::write(dir.path().join("README.md"), "not bundled").unwrap();

        let first = build(dir.path()).unwrap();
        let names: Vec<&str> = first.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                ".ebextensions/a.config",
                ".ebextensions/b.config",
                ".platform/hooks/predeploy/01-run.sh",
                "Dockerrun.aws.json"
            ]
        );
        // A later mtime must not change the bytes.
        fs::write(dir.path().join(".ebextensions/a.config"), "a").unwrap();
        let second = build(dir.path()).unwrap();
        assert_eq!(first.sha256, second.sha256);
        assert_eq!(
            fs::read(first.path()).unwrap(),
            fs::read(second.path()).unwrap()
        );

        let mut zip = ZipArchive::new(File::open(first.path()).unwrap()).unwrap();
        let hook = zip.by_name(".platform/hooks/predeploy/01-run.sh").unwrap();
        assert_eq!(hook.unix_mode().unwrap() & 0o777, 0o755);
        drop(hook);
        let mut run = String::new();
        zip.by_name(dockerrun::FILE)
            .unwrap()
            .read_to_string(&mut run)
            .unwrap();
        assert_eq!(run, MULTI);
    }

    #[test]
    fn links_out_of_the_folder_are_refused_links_inside_are_followed() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret.config"), "x").unwrap();
        let dir = folder();
        fs::create_dir_all(dir.path().join(".ebextensions")).unwrap();
        symlink(
            outside.path().join("secret.config"),
            dir.path().join(".ebextensions/evil.config"),
        )
        .unwrap();
        let err = build(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(".ebextensions/evil.config") && err.contains("outside"),
            "{err}"
        );

        fs::remove_file(dir.path().join(".ebextensions/evil.config")).unwrap();
        fs::write(dir.path().join("real.config"), "inside").unwrap();
        symlink(
            dir.path().join("real.config"),
            dir.path().join(".ebextensions/ok.config"),
        )
        .unwrap();
        let bundle = build(dir.path()).unwrap();
        assert!(
            bundle
                .entries
                .iter()
                .any(|e| e.name == ".ebextensions/ok.config")
        );
    }

    #[test]
    fn too_big_is_refused_before_reading() {
        let dir = folder();
        fs::create_dir_all(dir.path().join(".ebextensions")).unwrap();
        let big = File::create(dir.path().join(".ebextensions/big.bin")).unwrap();
        big.set_len(MAX_BYTES + 1).unwrap();
        let err = build(dir.path()).unwrap_err().to_string();
        assert!(err.contains("512 MiB"), "{err}");
    }

    #[test]
    fn prebuilt_zip_with_nested_dockerrun_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.zip");
        let mut zip = ZipWriter::new(File::create(&path).unwrap());
        zip.start_file("app/Dockerrun.aws.json", SimpleFileOptions::default())
            .unwrap();
        zip.write_all(MULTI.as_bytes()).unwrap();
        zip.finish().unwrap();
        let err = prebuilt(&path).unwrap_err().to_string();
        assert!(err.contains("at the root"), "{err}");
    }
}
