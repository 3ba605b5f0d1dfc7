//! Quarry's own Python environment: a venv built from a system interpreter
//! with the pinned packages of `python/requirements.txt` (`quarry
//! setup-python`, or on first use), found again by the hash of those
//! requirements.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::{PythonError, REQUIREMENTS};

/// Quarry's Python environment: `<home>/<hash of requirements>/` holds the
/// venv, the matplotlib font cache and `ready.json`.
#[derive(Debug, Clone)]
pub struct Runtime {
    home: PathBuf,
}

/// What `ready.json` records about the interpreter the venv was built from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeInfo {
    pub python: PathBuf,
    pub version: String,
    pub base_prefix: PathBuf,
    pub stdlib: PathBuf,
}

/// Progress of [`Runtime::setup`].
#[derive(Debug, Clone)]
pub enum SetupProgress {
    Step(String),
    Package { done: usize, total: usize, name: String },
}

impl Runtime {
    pub fn new(home: PathBuf) -> Runtime {
        Runtime { home }
    }

    /// Where the runtime lives unless configured: readable by the sandbox
    /// uid, so under `/var/lib/quarry/python` when running as root (a home
    /// directory under `/root` cannot be entered once the worker drops
    /// root), else `$XDG_DATA_HOME/quarry/python`.
    pub fn default_home(xdg_data_home: Option<PathBuf>, home: Option<PathBuf>) -> PathBuf {
        if nix::unistd::geteuid().is_root() {
            return PathBuf::from("/var/lib/quarry/python");
        }
        xdg_data_home
            .or_else(|| home.map(|h| h.join(".local/share")))
            .unwrap_or_else(|| std::env::temp_dir().join("quarry-python"))
            .join("quarry/python")
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// This version's directory.
    pub fn dir(&self) -> PathBuf {
        let h = blake3::hash(REQUIREMENTS.as_bytes()).to_hex();
        self.home.join(&h[..16])
    }

    pub fn interpreter(&self) -> PathBuf {
        self.dir().join("venv/bin/python")
    }

    pub fn info(&self) -> Option<RuntimeInfo> {
        let text = std::fs::read(self.dir().join("ready.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn is_ready(&self) -> bool {
        self.info().is_some() && self.interpreter().exists()
    }

    /// What the jailed kernel may read: this runtime and the base interpreter's files.
    pub fn read_paths(&self) -> Vec<PathBuf> {
        let mut out = vec![self.dir()];
        if let Some(info) = self.info() {
            out.push(info.python.clone());
            out.push(info.stdlib.clone());
            out.push(info.base_prefix.join("lib"));
        }
        out.extend(["/lib", "/lib64", "/usr/lib", "/usr/lib64"].map(PathBuf::from));
        out.sort();
        out.dedup();
        out
    }

    /// Build the venv (idempotent): find a system Python 3, create a venv,
    /// install the pinned packages, build matplotlib's font cache.
    pub fn setup(
        &self,
        python: Option<&Path>,
        progress: &mut dyn FnMut(SetupProgress),
    ) -> Result<RuntimeInfo, PythonError> {
        if let Some(info) = self.info().filter(|_| self.is_ready()) {
            return Ok(info);
        }
        let unavailable = |s: String| PythonError::Unavailable(s);
        progress(SetupProgress::Step("finding a system Python 3".into()));
        let (python, info) = find_python(python)?;
        let dir = self.dir();
        std::fs::create_dir_all(&self.home)
            .map_err(|e| unavailable(format!("cannot create {}: {e}", self.home.display())))?;
        if nix::unistd::geteuid().is_root() {
            for p in [self.home.as_path(), python.as_path()] {
                if let Some(blocked) = closed_ancestor(p) {
                    return Err(unavailable(format!(
                        "{} cannot be entered by the sandbox's unprivileged user (the directory {} is not world-searchable); choose a Python and a --python-home outside it (e.g. /usr/bin/python3 and /var/lib/quarry/python)",
                        p.display(),
                        blocked.display()
                    )));
                }
            }
        }
        let tmp = self.home.join(format!(".building-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| unavailable(format!("cannot create {}: {e}", tmp.display())))?;
        let result = (|| {
            progress(SetupProgress::Step(format!("creating a virtual environment from {}", python.display())));
            run_quiet(Command::new(&python).arg("-m").arg("venv").arg(tmp.join("venv")), "python -m venv")?;
            let req = tmp.join("requirements.txt");
            std::fs::write(&req, REQUIREMENTS).map_err(|e| unavailable(e.to_string()))?;
            let total = REQUIREMENTS.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).count();
            let mut child = Command::new(tmp.join("venv/bin/python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--no-cache-dir",
                    "--progress-bar",
                    "off",
                ])
                .arg("-r")
                .arg(&req)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| unavailable(format!("pip: {e}")))?;
            let stderr = child.stderr.take();
            let err_text = std::thread::spawn(move || {
                let mut s = String::new();
                if let Some(mut e) = stderr {
                    let _ = std::io::Read::read_to_string(&mut e, &mut s);
                }
                s
            });
            let mut done = 0;
            if let Some(out) = child.stdout.take() {
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(name) = line.strip_prefix("Collecting ") {
                        done += 1;
                        progress(SetupProgress::Package {
                            done: done.min(total),
                            total,
                            name: name.trim().to_string(),
                        });
                    } else if line.starts_with("Installing collected packages") {
                        progress(SetupProgress::Step("installing packages".into()));
                    }
                }
            }
            let status = child.wait().map_err(|e| unavailable(format!("pip: {e}")))?;
            if !status.success() {
                let err = err_text.join().unwrap_or_default();
                return Err(unavailable(format!(
                    "pip could not install the kernel's packages (is PyPI reachable?): {}",
                    err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no message")
                )));
            }
            progress(SetupProgress::Step("building matplotlib's font cache".into()));
            run_quiet(
                Command::new(tmp.join("venv/bin/python"))
                    .args(["-c", "import matplotlib.font_manager"])
                    .env("MPLCONFIGDIR", tmp.join("mplcache")),
                "matplotlib font cache",
            )?;
            std::fs::write(tmp.join("ready.json"), serde_json::to_vec_pretty(&info).unwrap_or_default())
                .map_err(|e| unavailable(e.to_string()))?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if std::fs::rename(&tmp, &dir).is_err() {
            // Another process finished first; use its runtime.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        self.info().ok_or_else(|| unavailable(format!("the runtime in {} is incomplete", dir.display())))
    }
}

fn run_quiet(cmd: &mut Command, what: &str) -> Result<(), PythonError> {
    let out = cmd.output().map_err(|e| PythonError::Unavailable(format!("{what}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no message");
    let hint = if last.contains("ensurepip") || last.contains("venv") {
        " (on Debian/Ubuntu: apt-get install python3-venv)"
    } else {
        ""
    };
    Err(PythonError::Unavailable(format!("{what} failed: {last}{hint}")))
}

/// The first ancestor of `p` (or `p`'s directory) that others cannot search.
fn closed_ancestor(p: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let real = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut cur = real.parent().map(Path::to_path_buf);
    if real.is_dir() {
        cur = Some(real.clone());
    }
    while let Some(d) = cur {
        if let Ok(m) = std::fs::metadata(&d) {
            if m.permissions().mode() & 0o001 == 0 {
                return Some(d);
            }
        }
        cur = d.parent().map(Path::to_path_buf);
    }
    None
}

/// A system Python ≥ 3.9 with venv, as given or from the usual places.
fn find_python(given: Option<&Path>) -> Result<(PathBuf, RuntimeInfo), PythonError> {
    let candidates: Vec<PathBuf> = match given {
        Some(p) => vec![p.to_path_buf()],
        None => ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"].map(PathBuf::from).to_vec(),
    };
    let probe = "import sys, json, sysconfig, venv; print(json.dumps({'python': sys.executable, 'version': sys.version.split()[0], 'base_prefix': sys.base_prefix, 'stdlib': sysconfig.get_path('stdlib'), 'ok': sys.version_info >= (3, 9)}))";
    let mut tried = Vec::new();
    for c in candidates {
        if !c.exists() {
            tried.push(format!("{} (not found)", c.display()));
            continue;
        }
        match Command::new(&c).args(["-I", "-c", probe]).output() {
            Ok(o) if o.status.success() => {
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
                if v["ok"] != serde_json::Value::Bool(true) {
                    tried.push(format!("{} (Python {} is older than 3.9)", c.display(), v["version"]));
                    continue;
                }
                let real = std::fs::canonicalize(v["python"].as_str().unwrap_or_default()).unwrap_or(c.clone());
                let info = RuntimeInfo {
                    python: real,
                    version: v["version"].as_str().unwrap_or_default().to_string(),
                    base_prefix: PathBuf::from(v["base_prefix"].as_str().unwrap_or("/usr")),
                    stdlib: PathBuf::from(v["stdlib"].as_str().unwrap_or_default()),
                };
                return Ok((c, info));
            }
            Ok(o) => tried.push(format!("{} ({})", c.display(), String::from_utf8_lossy(&o.stderr).trim())),
            Err(e) => tried.push(format!("{} ({e})", c.display())),
        }
    }
    Err(PythonError::Unavailable(format!(
        "no usable Python 3 found (tried {}); install one (Debian/Ubuntu: apt-get install python3 python3-venv) or pass --python /path/to/python3. SQL questions keep working without it.",
        tried.join(", ")
    )))
}
