//! PDF reports: the HTML report (`quarry_report::Format::Html`, which
//! inlines everything it shows) printed by headless Chromium — the browser
//! renders the same page a person opens, so charts stay vectors (Vega's SVG
//! renderer), tables repeat their header on every page and the print
//! stylesheet numbers the pages. Chromium was chosen over a typesetter
//! because the report is already a page built for it; a machine without
//! Chromium gets an error saying how to install it (or to export `.html`).
//!
//! The browser is untrusted work too: it runs with a clean environment in a
//! throwaway profile, in its own process group, with no network (a network
//! namespace of its own where the kernel allows one, and in any case every
//! host name unresolvable and every connection sent to a closed proxy), CPU,
//! file-size and core limits, and a wall-clock limit after which the whole
//! group is killed. Chromium's own sandbox needs namespaces it cannot have
//! when Quarry runs as root, so it is off (`--no-sandbox`); the page it
//! prints is Quarry's own, with every cell value escaped as text.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long printing one report may take.
pub const PRINT_TIME: Duration = Duration::from_secs(60);

/// Where Chromium is: `QUARRY_CHROMIUM`, else the first of the usual
/// names on `PATH`.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("QUARRY_CHROMIUM").map(PathBuf::from).filter(|p| p.is_file()) {
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// Chromiums printing at once in this process; a further print waits for a slot.
pub const MAX_PRINTING: usize = 2;

/// How long a print waits for a slot before it gives up.
const SLOT_WAIT: Duration = Duration::from_secs(90);

/// One of [`MAX_PRINTING`] slots, held while a Chromium prints.
struct Slot;

static PRINTING: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

impl Slot {
    fn take(wait: Duration) -> Result<Slot, String> {
        let (lock, freed) = &PRINTING;
        let busy = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (mut busy, waited) =
            freed.wait_timeout_while(busy, wait, |n| *n >= MAX_PRINTING).unwrap_or_else(|p| p.into_inner());
        if waited.timed_out() && *busy >= MAX_PRINTING {
            return Err("PDF: other reports are being printed; try again in a minute".into());
        }
        *busy += 1;
        Ok(Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (lock, freed) = &PRINTING;
        let mut busy = lock.lock().unwrap_or_else(|p| p.into_inner());
        *busy = busy.saturating_sub(1);
        freed.notify_one();
    }
}

/// The report `html` (a whole page, as `quarry_report` renders it) as PDF
/// bytes. At most [`MAX_PRINTING`] print at once (each Chromium takes
/// hundreds of MB); the others wait their turn.
pub fn print(html: &[u8]) -> Result<Vec<u8>, String> {
    let _slot = Slot::take(SLOT_WAIT)?;
    let browser = chromium().ok_or(
        "a PDF needs Chromium to print the report: install it (Debian: apt-get install chromium) or set \
         QUARRY_CHROMIUM to its path — or export .html and print it from a browser",
    )?;
    let dir = tempfile::tempdir().map_err(|e| format!("PDF: no temporary directory: {e}"))?;
    let (page, out) = (dir.path().join("report.html"), dir.path().join("report.pdf"));
    std::fs::write(&page, html).map_err(|e| format!("PDF: {e}"))?;
    let log = dir.path().join("chromium.log");
    let stderr = std::fs::File::create(&log).map_err(|e| format!("PDF: {e}"))?;
    let mut cmd = command(&browser, dir.path(), &page, &out);
    let mut child = cmd.stderr(stderr).spawn().map_err(|e| format!("PDF: cannot start {}: {e}", browser.display()))?;
    let status = wait(&mut child, PRINT_TIME)?;
    let pdf = std::fs::read(&out).unwrap_or_default();
    if !status.success() || !pdf.starts_with(b"%PDF") {
        let err = std::fs::read_to_string(&log).unwrap_or_default();
        let last: Vec<&str> = err.lines().rev().take(3).collect();
        return Err(format!("PDF: Chromium did not print the report ({status}): {}", last.join(" / ")));
    }
    Ok(pdf)
}

/// Chromium told to print `page` to `out` and do nothing else, in `dir`.
fn command(browser: &Path, dir: &Path, page: &Path, out: &Path) -> Command {
    let mut c = Command::new(browser);
    c.env_clear()
        .env("HOME", dir)
        .env("TMPDIR", dir)
        .env("XDG_CONFIG_HOME", dir)
        .env("XDG_CACHE_HOME", dir)
        .env("PATH", "/usr/bin:/bin")
        .current_dir(dir)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-sync",
            "--disable-default-apps",
            "--no-first-run",
            "--no-default-browser-check",
            "--mute-audio",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--no-pdf-header-footer",
            "--run-all-compositor-stages-before-draw",
            // Time for the inlined Vega to draw the charts before printing.
            "--virtual-time-budget=15000",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--print-to-pdf={}", out.display()))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::setpgid(0, 0);
            // No network: a namespace of its own (as root, or in a user
            // namespace otherwise); where neither is allowed, the flags above.
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                let _ = libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET);
            }
            let limit = |r, n: u64| {
                let l = libc::rlimit { rlim_cur: n, rlim_max: n };
                libc::setrlimit(r, &l);
            };
            limit(libc::RLIMIT_CPU, 120);
            limit(libc::RLIMIT_FSIZE, 512 << 20);
            limit(libc::RLIMIT_CORE, 0);
            Ok(())
        });
    }
    c
}

/// Wait for `child` at most `limit`; past it, kill its whole group.
fn wait(child: &mut std::process::Child, limit: Duration) -> Result<std::process::ExitStatus, String> {
    let started = Instant::now();
    loop {
        if let Some(s) = child.try_wait().map_err(|e| format!("PDF: {e}"))? {
            // Helpers it started and left behind go with it.
            // SAFETY: a plain kill(2) of the group the child led.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            return Ok(s);
        }
        if started.elapsed() > limit {
            // SAFETY: a plain kill(2) of the group the child leads.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            return Err(format!("PDF: printing took longer than {} s and was stopped", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_beyond_the_limit_wait_for_a_slot() {
        let held: Vec<Slot> = (0..MAX_PRINTING).map(|_| Slot::take(Duration::from_secs(5)).unwrap()).collect();
        let e = Slot::take(Duration::from_millis(50)).err().unwrap();
        assert!(e.contains("try again"), "{e}");
        let waiter = std::thread::spawn(|| Slot::take(Duration::from_secs(10)).map(|_| ()));
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
        assert!(waiter.join().unwrap().is_ok(), "a freed slot goes to the one waiting");
    }
}
