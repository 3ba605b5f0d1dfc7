//! The OS walls around a worker that runs untrusted code (the Python kernel).
//!
//! [`Launcher::start`](crate::Launcher::start) runs `quarry worker jail SPEC`
//! under rlimits; that process ([`enter`]) raises the walls on itself and
//! then executes the kernel:
//!
//! 1. **uid**: when Quarry runs as root it drops to an unprivileged uid of
//!    its own (RLIMIT_NPROC is ignored for root, even root mapped into a
//!    user namespace) and caps processes with RLIMIT_NPROC.
//! 2. **namespaces**: new user, network, mount, PID, IPC and UTS
//!    namespaces. The network namespace has no interfaces but a down
//!    loopback: nothing to connect to. The jail forks once so the kernel is
//!    PID 1 of its namespace, remounts `/proc` (host processes are
//!    invisible) and mounts a size-capped tmpfs over its scratch directory,
//!    the one writable place. The kernel's inside uid is 1000, not root.
//! 3. **Landlock**: read and execute only the paths in [`Walls::read`] (the
//!    Python installation), read-write only the scratch directory, no TCP
//!    bind/connect, no signals or abstract sockets outside the sandbox.
//! 4. **seccomp**: no sockets, ptrace, mount, namespaces, fork (threads
//!    only), kernel keyrings, bpf, perf, io_uring, module loading.
//!
//! Each wall that cannot be raised fails the start with a message naming
//! it ([`JAIL_REFUSED`]), unless [`Walls::best_effort`] (`--unsafe-python`)
//! says to go on without it. [`probe`] raises the walls without running
//! anything and reports which held.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Frame, Launcher, Limits, Step, WorkerError};

/// Exit status of a jail that refused to start because a wall could not be raised.
pub const JAIL_REFUSED: i32 = 97;

/// The uid the kernel has inside its user namespace.
pub const INSIDE_UID: u32 = 1000;

/// Which walls to raise and what the jailed program may touch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Walls {
    /// User, network, mount, PID, IPC and UTS namespaces.
    pub namespaces: bool,
    /// Landlock file-system, TCP and scope rules.
    pub landlock: bool,
    /// The seccomp filter.
    pub seccomp: bool,
    /// Go on when a wall cannot be raised (`--unsafe-python`), saying so on
    /// stderr, instead of refusing to run.
    pub best_effort: bool,
    /// Paths the program may read and execute (the Python installation).
    pub read: Vec<PathBuf>,
    /// Size of the tmpfs mounted as the scratch directory.
    pub scratch_bytes: u64,
    /// Processes and threads beyond those the sandbox uid already runs.
    pub max_processes: u64,
    /// Failure injection for tests: the named wall ("namespaces", "landlock"
    /// or "seccomp") reports that it could not be raised, as on a kernel
    /// without it.
    #[serde(default)]
    pub inject_failure: Option<String>,
}

impl Default for Walls {
    fn default() -> Self {
        Walls {
            namespaces: true,
            landlock: true,
            seccomp: true,
            best_effort: false,
            read: Vec::new(),
            scratch_bytes: 256 << 20,
            max_processes: 64,
            inject_failure: None,
        }
    }
}

/// What `quarry worker jail` is asked to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JailSpec {
    pub walls: Walls,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The per-worker scratch directory (an empty host directory; a tmpfs
    /// is mounted over it inside the mount namespace). Also the cwd.
    pub scratch: PathBuf,
    /// The uid to drop to when started as root.
    pub sandbox_uid: u32,
    /// Raise the walls, report which held as one frame, and exit.
    #[serde(default)]
    pub probe: bool,
}

/// Which walls held, as reported by [`probe`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WallReport {
    /// "dropped to uid N", "unprivileged uid N" or the error.
    pub uid: String,
    pub namespaces: Result<(), String>,
    /// "full", "partial" or the error.
    pub landlock: Result<String, String>,
    pub seccomp: Result<(), String>,
}

impl WallReport {
    /// True when every wall held (Landlock fully or partially enforced).
    pub fn all_up(&self) -> bool {
        self.namespaces.is_ok() && self.landlock.is_ok() && self.seccomp.is_ok()
    }

    /// The walls that did not hold, in words.
    pub fn missing(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Err(e) = &self.namespaces {
            out.push(format!("namespaces ({e})"));
        }
        if let Err(e) = &self.landlock {
            out.push(format!("Landlock ({e})"));
        }
        if let Err(e) = &self.seccomp {
            out.push(format!("seccomp ({e})"));
        }
        out
    }
}

/// A uid for sandboxed workers when Quarry runs as root: high, unused by
/// system accounts, distinct per Quarry process so RLIMIT_NPROC counts only
/// this process's workers.
pub fn sandbox_uid() -> u32 {
    2_000_000 + (std::process::id() % 1_000_000)
}

/// Raise the walls on a throwaway jail and report which held.
pub fn probe(launcher: &Launcher, walls: &Walls) -> Result<WallReport, WorkerError> {
    let scratch = ScratchDir::new()?;
    let spec = JailSpec {
        walls: Walls { best_effort: true, ..walls.clone() },
        program: PathBuf::from("/nonexistent"),
        args: Vec::new(),
        env: Vec::new(),
        scratch: scratch.path().to_path_buf(),
        sandbox_uid: sandbox_uid(),
        probe: true,
    };
    let args = vec!["jail".to_string(), serde_json::to_string(&spec).unwrap_or_default()];
    let limits = Limits { time: Duration::from_secs(10), ..Limits::default() };
    let mut worker = launcher.start(&args, &limits)?;
    worker.recv(Duration::from_secs(10), |f| Ok(Step::Done(f.parse::<WallReport>()?)))
}

/// A host directory for one worker's scratch tmpfs, removed when dropped.
#[derive(Debug)]
pub struct ScratchDir(tempfile::TempDir);

impl ScratchDir {
    pub fn new() -> Result<ScratchDir, WorkerError> {
        tempfile::Builder::new()
            .prefix("quarry-scratch-")
            .tempdir()
            .map(ScratchDir)
            .map_err(|e| WorkerError::Spawn(format!("scratch directory: {e}")))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// Inside `quarry worker jail`: raise the walls and execute the program.
/// Never returns; exits [`JAIL_REFUSED`] when a required wall fails.
pub fn enter(spec: JailSpec) -> ! {
    match raise(&spec) {
        Ok(report) if spec.probe => {
            let _ = Frame::json(&report).write_to(&mut std::io::stdout());
            std::process::exit(0);
        }
        Ok(_) => {
            let err = std::process::Command::new(&spec.program)
                .args(&spec.args)
                .env_clear()
                .envs(spec.env.iter().map(|(k, v)| (k, v)))
                .current_dir(&spec.scratch)
                .exec();
            eprintln!("quarry-jail: cannot run {}: {err}", spec.program.display());
            std::process::exit(JAIL_REFUSED)
        }
        Err(e) => {
            eprintln!("quarry-jail: {e}");
            std::process::exit(JAIL_REFUSED)
        }
    }
}

/// Raise every wall in order; `Err` names the first required wall that failed.
fn raise(spec: &JailSpec) -> Result<WallReport, String> {
    let w = &spec.walls;
    let need = |wall: &str, r: Result<(), String>| -> Result<(), String> {
        match r {
            Ok(()) => Ok(()),
            Err(e) if w.best_effort => {
                if !spec.probe {
                    eprintln!("quarry-jail: WARNING: running without {wall}: {e}");
                }
                Ok(())
            }
            Err(e) => Err(format!("cannot raise the {wall} wall: {e}")),
        }
    };
    let off = || Err::<(), String>("not raised".to_string());
    let injected = |wall: &str| w.inject_failure.as_deref() == Some(wall);
    let mut report =
        WallReport { uid: String::new(), namespaces: off(), landlock: Err("not raised".into()), seccomp: off() };

    // 1. An unprivileged uid, and a cap on processes.
    let outer_uid = nix::unistd::geteuid().as_raw();
    let (uid, gid) = if outer_uid == 0 {
        let u = spec.sandbox_uid;
        let owner = Some(nix::unistd::Uid::from_raw(u));
        nix::unistd::chown(&spec.scratch, owner, Some(nix::unistd::Gid::from_raw(u)))
            .map_err(|e| format!("scratch {}: {e}", spec.scratch.display()))?;
        drop_root(u).map_err(|e| format!("cannot drop root to uid {u}: {e}"))?;
        report.uid = format!("dropped to uid {u}");
        (u, u)
    } else {
        report.uid = format!("unprivileged uid {outer_uid}");
        (outer_uid, nix::unistd::getegid().as_raw())
    };
    let nproc = count_tasks(uid) + w.max_processes;
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NPROC, nproc, nproc)
        .map_err(|e| format!("RLIMIT_NPROC: {e}"))?;

    // 2. Namespaces; the kernel becomes PID 1 of a new PID namespace.
    report.namespaces = if injected("namespaces") {
        Err("not supported by this kernel (injected failure)".into())
    } else if w.namespaces {
        unshare_all(uid, gid)
    } else {
        Err("switched off".into())
    };
    if report.namespaces.is_ok() {
        become_pid1()?;
        report.namespaces = mount_private(&spec.scratch, w.scratch_bytes);
    }
    need("namespaces", report.namespaces.clone())?;
    std::env::set_current_dir(&spec.scratch).map_err(|e| format!("scratch {}: {e}", spec.scratch.display()))?;

    // 3. Landlock.
    report.landlock = if injected("landlock") {
        Err("not supported by this kernel (injected failure)".into())
    } else if w.landlock {
        landlock_restrict(&w.read, &spec.scratch)
    } else {
        Err("switched off".into())
    };
    need("Landlock", report.landlock.clone().map(|_| ()))?;

    // 4. seccomp, last: it forbids what the steps above needed.
    report.seccomp = if injected("seccomp") {
        Err("not supported by this kernel (injected failure)".into())
    } else if w.seccomp {
        seccomp_filter()
    } else {
        Err("switched off".into())
    };
    need("seccomp", report.seccomp.clone())?;
    Ok(report)
}

fn drop_root(uid: u32) -> nix::Result<()> {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    setgroups(&[])?;
    setresgid(Gid::from_raw(uid), Gid::from_raw(uid), Gid::from_raw(uid))?;
    setresuid(Uid::from_raw(uid), Uid::from_raw(uid), Uid::from_raw(uid))?;
    // Changing uid made the process non-dumpable, which hands /proc/self to
    // root; the user namespace's maps are written there next.
    // SAFETY: plain prctl on this process.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) } != 0 {
        return Err(nix::errno::Errno::last());
    }
    Ok(())
}

/// Tasks (processes and threads) the uid runs now: RLIMIT_NPROC counts them all.
fn count_tasks(uid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    let mut n = 0;
    for e in dir.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        use std::os::unix::fs::MetadataExt;
        if e.metadata().map(|m| m.uid() == uid).unwrap_or(false) {
            n += std::fs::read_dir(e.path().join("task")).map(|d| d.count() as u64).unwrap_or(1);
        }
    }
    n
}

fn unshare_all(uid: u32, gid: u32) -> Result<(), String> {
    use nix::sched::{unshare, CloneFlags};
    let flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS;
    unshare(flags).map_err(|e| format!("unshare: {e}"))?;
    std::fs::write("/proc/self/setgroups", "deny").map_err(|e| format!("setgroups: {e}"))?;
    std::fs::write("/proc/self/uid_map", format!("{INSIDE_UID} {uid} 1")).map_err(|e| format!("uid_map: {e}"))?;
    std::fs::write("/proc/self/gid_map", format!("{INSIDE_UID} {gid} 1")).map_err(|e| format!("gid_map: {e}"))?;
    Ok(())
}

/// Fork so the child is PID 1 of the new PID namespace. The parent closes
/// every descriptor (so the pipes end when the kernel ends), waits, and
/// exits as the child did; the child dies with it.
fn become_pid1() -> Result<(), String> {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    // SAFETY: the jail is single-threaded here (no runtime has started).
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Parent { child } => {
            for fd in 0..1024 {
                let _ = nix::unistd::close(fd);
            }
            let code = loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, c)) => break c,
                    Ok(WaitStatus::Signaled(_, s, _)) => {
                        // Die the same way, so the launcher reports the signal.
                        // SAFETY: restoring the default action and raising it on ourselves.
                        unsafe {
                            libc::signal(s as i32, libc::SIG_DFL);
                            libc::raise(s as i32);
                        }
                        break 128 + s as i32;
                    }
                    Ok(_) => continue,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => break 1,
                }
            };
            std::process::exit(code)
        }
        ForkResult::Child => {
            // SAFETY: plain prctl; dies if the jail parent is killed.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            Ok(())
        }
    }
}

fn mount_private(scratch: &Path, scratch_bytes: u64) -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).map_err(|e| format!("private /: {e}"))?;
    mount(Some("proc"), "/proc", Some("proc"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, none)
        .map_err(|e| format!("mount /proc: {e}"))?;
    let opts = format!("size={scratch_bytes},mode=0700,uid={INSIDE_UID},gid={INSIDE_UID}");
    mount(
        Some("tmpfs"),
        scratch,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(opts.as_str()),
    )
    .map_err(|e| format!("scratch tmpfs: {e}"))?;
    let _ = nix::unistd::sethostname("quarry-sandbox");
    Ok(())
}

fn landlock_restrict(read: &[PathBuf], scratch: &Path) -> Result<String, String> {
    use landlock::{
        path_beneath_rules, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
        Scope, ABI,
    };
    let abi = ABI::V6;
    let e = |e: landlock::RulesetError| e.to_string();
    let readable: Vec<&Path> = read
        .iter()
        .map(PathBuf::as_path)
        .chain(
            ["/dev/urandom", "/proc", "/sys/devices/system/cpu", "/etc/ld.so.cache", "/etc/localtime"].map(Path::new),
        )
        .filter(|p| p.exists())
        .collect();
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(e)?
        .handle_access(AccessNet::from_all(abi))
        .map_err(e)?
        .scope(Scope::from_all(abi))
        .map_err(e)?
        .create()
        .map_err(e)?
        .add_rules(path_beneath_rules(readable, AccessFs::from_read(abi)))
        .map_err(e)?
        .add_rules(path_beneath_rules([scratch], AccessFs::from_all(abi)))
        .map_err(e)?
        .add_rules(path_beneath_rules(["/dev/null"], AccessFs::ReadFile | AccessFs::WriteFile))
        .map_err(e)?
        .restrict_self()
        .map_err(e)?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok("full".into()),
        RulesetStatus::PartiallyEnforced => Ok("partial".into()),
        _ => Err("not supported by this kernel".into()),
    }
}

fn seccomp_filter() -> Result<(), String> {
    use seccompiler::{
        apply_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| e.to_string())?;
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let always = [
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_sendto,
        libc::SYS_sendmsg,
        libc::SYS_sendmmsg,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_kcmp,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_syslog,
        libc::SYS_quotactl,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_adjtimex,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_fork,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_vfork,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_iopl,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_ioperm,
    ];
    for nr in always {
        denied.insert(nr, Vec::new());
    }
    // clone without CLONE_THREAD is a fork: threads yes, processes no.
    let fork_like =
        SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64), 0)
            .map_err(|e| e.to_string())?;
    denied.insert(libc::SYS_clone, vec![SeccompRule::new(vec![fork_like]).map_err(|e| e.to_string())?]);
    let deny: BpfProgram =
        SeccompFilter::new(denied, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch)
            .map_err(|e| e.to_string())?
            .try_into()
            .map_err(|e: seccompiler::BackendError| e.to_string())?;
    // clone3's flags live in memory seccomp cannot read: ENOSYS makes libc fall back to clone.
    let clone3: BpfProgram = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| e.to_string())?
    .try_into()
    .map_err(|e: seccompiler::BackendError| e.to_string())?;
    apply_filter(&clone3).map_err(|e| e.to_string())?;
    apply_filter(&deny).map_err(|e| e.to_string())?;
    Ok(())
}
