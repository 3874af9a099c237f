//! Reading scenario files for `check` and `replay`: what is refused before parsing (too large, not
//! a regular file), directory walks that do not follow symlink loops, and one run per file however
//! many times (or under however many names) it is given.

use mmcheck_scenario::parse::{escape_controls, parse_scenario_bytes};
use mmcheck_scenario::Scenario;
use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest scenario file accepted, in bytes (the catalogue's largest is a few KiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// One input: a scenario that loaded, or why the file was refused (rendered, for stderr).
#[derive(Clone, Debug)]
pub enum Input {
    Loaded {
        file: String,
        scenario: Arc<Scenario>,
    },
    Refused {
        file: String,
        error: String,
    },
}

/// Read a scenario file: a regular file of at most [`MAX_FILE_BYTES`], checked before it is
/// opened (a FIFO or a device is never opened, so it cannot block or stream forever), then parsed.
pub fn read_scenario(path: &Path) -> Result<Scenario, String> {
    let name = path.display().to_string();
    let bytes =
        read_bytes(path).map_err(|e| format!("error: {}: {e}\n", escape_controls(&name)))?;
    parse_scenario_bytes(&name, &bytes).map_err(|e| e.render())
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.is_dir() {
        return Err("is a directory".into());
    }
    if !meta.is_file() {
        return Err(format!(
            "not a regular file ({}): scenario files must be regular files",
            file_type_name(&meta)
        ));
    }
    let too_big = |n: u64| {
        format!("{n} bytes: larger than the limit of {MAX_FILE_BYTES} bytes (1 MiB) for a scenario file")
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big(meta.len()));
    }
    // Non-blocking, in case the file was swapped for a FIFO since the check above.
    let f = open_nonblocking(path).map_err(|e| format!("cannot read: {e}"))?;
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

fn file_type_name(m: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = m.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    let _ = m;
    "not a file"
}

/// The inputs named by `paths` (files, or directories walked for `.mmt` files), in order, each
/// file once: a file given twice, or under two names (a symlink, `./x`), runs once. Directory
/// walks sort their entries and never enter a directory twice (symlink loops end there).
pub fn gather(paths: &[String]) -> Vec<Input> {
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    let mut out = Vec::new();
    for p in paths {
        let path = Path::new(p);
        if path.is_dir() {
            let mut files = Vec::new();
            let mut dirs = BTreeSet::new();
            collect(path, &mut files, &mut dirs);
            if files.is_empty() {
                out.push(Input::Refused {
                    file: p.clone(),
                    error: format!(
                        "error: {}: no .mmt scenario files in this directory\n",
                        escape_controls(p)
                    ),
                });
            }
            for f in files {
                push_file(&f, f.display().to_string(), &mut seen, &mut out);
            }
        } else {
            push_file(path, p.clone(), &mut seen, &mut out);
        }
    }
    out
}

fn push_file(path: &Path, name: String, seen: &mut BTreeSet<PathBuf>, out: &mut Vec<Input>) {
    if let Ok(c) = std::fs::canonicalize(path) {
        if !seen.insert(c) {
            return;
        }
    }
    out.push(match read_scenario(path) {
        Ok(s) => Input::Loaded {
            file: name,
            scenario: Arc::new(s),
        },
        Err(error) => Input::Refused { file: name, error },
    });
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>, dirs: &mut BTreeSet<PathBuf>) {
    let Ok(canon) = std::fs::canonicalize(dir) else {
        return;
    };
    if !dirs.insert(canon) {
        return; // a symlink loop, or a directory reached twice
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut v: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    for p in v {
        if p.is_dir() {
            collect(&p, out, dirs);
        } else if p.extension().is_some_and(|e| e == "mmt") {
            out.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mmcheck-input-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const OK: &str =
        "scenario s\ninit {\n  mmap anon @0 pages=1\n}\nthread T0 {\n  load @0\n}\nexpect clean\n";

    #[test]
    fn the_same_file_twice_runs_once() {
        let d = tmp("twice");
        let f = d.join("a.mmt");
        std::fs::write(&f, OK).unwrap();
        std::os::unix::fs::symlink(&f, d.join("b.mmt")).unwrap();
        let a = f.display().to_string();
        let dot = format!("{}/./a.mmt", d.display());
        let b = d.join("b.mmt").display().to_string();
        let got = gather(&[a.clone(), dot, b, d.display().to_string()]);
        assert_eq!(got.len(), 1, "{got:?}");
    }

    #[test]
    fn symlink_loops_are_not_followed() {
        let d = tmp("loop");
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/a.mmt"), OK).unwrap();
        std::os::unix::fs::symlink(&d, d.join("sub/up")).unwrap();
        let got = gather(&[d.display().to_string()]);
        assert_eq!(got.len(), 1, "{got:?}");
    }

    #[test]
    fn fifos_devices_and_large_files_are_refused() {
        let d = tmp("special");
        let fifo = d.join("f.mmt");
        let c = std::ffi::CString::new(fifo.display().to_string()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_scenario(&fifo).unwrap_err();
        assert!(e.contains("not a regular file (a FIFO)"), "{e}");
        let e = read_scenario(Path::new("/dev/zero")).unwrap_err();
        assert!(e.contains("a character device"), "{e}");
        let big = d.join("big.mmt");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        let e = read_scenario(&big).unwrap_err();
        assert!(e.contains("larger than the limit"), "{e}");
    }

    #[test]
    fn control_bytes_are_escaped_in_errors() {
        let d = tmp("ctl");
        let f = d.join("c.mmt");
        std::fs::write(&f, "scenario s\n\x1b[31mthread\x07 {\n").unwrap();
        let e = read_scenario(&f).unwrap_err();
        assert!(!e.chars().any(|c| c.is_control() && c != '\n'), "{e:?}");
        assert!(e.contains("\\x1b"), "{e}");
    }
}
