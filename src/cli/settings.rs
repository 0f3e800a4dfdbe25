//! Validated settings: the global flags resolved once into what commands use.
//!
//! Defaults that depend on other flags are decided here (the state dir and the persisted file
//! under `--netns`, which boot files to check), and so is the order in which the process is
//! changed: the network namespace is entered before the sysctl tree is opened, once. Commands
//! receive `&Settings` and ask for the tree or the whole [`Context`] they need.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::adopt::boot::BootFiles;
use crate::change::context::Context;
use crate::change::persist::{self, DEFAULT_SYSCTL_D};
use crate::change::store::{DEFAULT_STATE_DIR, Store};
use crate::cli::flags::Global;
use crate::env::{self, Env};
use crate::error::{Error, Result};
use crate::kernel::netns;
use crate::kernel::{PROC_SYS, SysctlTree};
use crate::schema::finding::Target;
use crate::schema::{Schema, Version};

/// The namespace this process was started in when it is not the host's: `Some(Some(name))`
/// when `ip netns` pinned it under /run/netns, `Some(None)` when it is anonymous (or when the
/// host's cannot be told: pid 1's namespace link may be unreadable even to root, and a forked
/// watcher is right in either case), `None` in the host's own namespace.
fn implicit_netns() -> Option<Option<String>> {
    let mine = netns::current_inode()?;
    if let Some(name) = netns::name_of(mine) {
        return Some(Some(name));
    }
    match netns::inode_of(Path::new("/proc/1/ns/net")) {
        Some(host) if host == mine => None,
        _ => Some(None),
    }
}

/// The running kernel's `CONFIG_HZ`, from its build configuration when it is installed
/// (`/boot/config-RELEASE`, or `/proc/config.gz` is not read: it needs a decompressor).
fn running_hz() -> Option<u32> {
    let release = env::kernel_release()?;
    let text = std::fs::read_to_string(format!("/boot/config-{release}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("CONFIG_HZ=")?.trim().parse().ok())
}

/// The global flags, validated.
pub struct Settings {
    /// The sysctl root (`--root`).
    pub root: PathBuf,
    /// The network namespace to enter (`--netns`).
    pub netns: Option<String>,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The persisted sysctl.d file, when persisting is on.
    pub persist_file: Option<PathBuf>,
    /// A schema directory replacing the built-in one.
    pub schema_dir: Option<PathBuf>,
    /// `--kernel`: validate for this kernel instead of the running one.
    pub kernel: Option<Version>,
    /// `--k8s`.
    pub k8s: Option<Version>,
    /// Warnings block like errors.
    pub deny_warnings: bool,
    /// Keys the catalogue does not describe are errors.
    pub strict: bool,
    /// How long to wait for the state lock.
    pub lock_timeout: Duration,
    /// Root of the sysctl.d directories boot reads, when given.
    pub boot_root: Option<PathBuf>,
    /// The process around the core.
    pub env: &'static dyn Env,
}

impl Settings {
    /// Resolves the global flags.
    pub fn from_flags(g: &Global) -> Result<Self> {
        let state_dir = g.state_dir.clone().unwrap_or_else(|| match &g.netns {
            Some(ns) => PathBuf::from(DEFAULT_STATE_DIR)
                .join("netns")
                .join(ns.replace('/', "_")),
            None => PathBuf::from(DEFAULT_STATE_DIR),
        });
        // With --netns nothing is persisted unless asked for: boot would apply it to the host.
        let persist_dir = match (&g.sysctl_d, &g.netns) {
            _ if g.no_persist => None,
            (Some(dir), _) => Some(dir.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(PathBuf::from(DEFAULT_SYSCTL_D)),
        };
        Ok(Self {
            root: g.root.clone(),
            netns: g.netns.clone(),
            state_dir,
            persist_file: persist_dir.map(|d| persist::file_in(&d)),
            schema_dir: g.schema.clone(),
            kernel: g.kernel,
            k8s: g.k8s,
            deny_warnings: g.deny_warnings,
            strict: g.strict,
            lock_timeout: Duration::from_secs(g.lock_timeout),
            boot_root: g.boot_root.clone(),
            env: &env::SYSTEM,
        })
    }

    /// The schema: built in, or `--schema DIR`.
    pub fn schema(&self) -> Result<Schema> {
        match &self.schema_dir {
            Some(dir) => Schema::from_dir(dir),
            None => Schema::embedded(),
        }
    }

    /// The validation target: `--kernel`/`--k8s`, else the running kernel and its memory.
    pub fn target(&self) -> Target {
        let running = env::kernel_release()
            .and_then(|r| r.parse().ok())
            .unwrap_or(Version(6, 1, 0));
        let mem_bytes = match self.kernel {
            Some(_) => None,
            None => nix::sys::sysinfo::sysinfo().ok().map(|i| i.ram_total()),
        };
        let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .unwrap_or(4096) as u64;
        Target {
            kernel: self.kernel.unwrap_or(running),
            k8s: self.k8s,
            mem_bytes,
            page_size,
            child_netns: self.netns.is_some(),
            hz: match self.kernel {
                Some(_) => None,
                None => running_hz(),
            },
            strict: self.strict,
        }
    }

    /// Enters `--netns` (if given) and opens the sysctl tree. Call once per command.
    pub fn tree(&self) -> Result<SysctlTree> {
        if let Some(ns) = &self.netns {
            netns::enter(ns)?;
        }
        SysctlTree::open(&self.root)
    }

    /// Whether keys exist on the target, for validation: asked of the live tree when the
    /// target is the running kernel (or `--root`, `--netns`), never for `--kernel X`.
    pub fn live_tree(&self) -> Option<SysctlTree> {
        match self.kernel {
            Some(_) => None,
            None => self.tree().ok(),
        }
    }

    /// The tree, the store and everything else the core needs.
    pub fn context(&self) -> Result<Context> {
        let tree = self.tree()?;
        let store = Store::new(&self.state_dir, self.env).for_target(tree.identity()?);
        Ok(Context {
            tree,
            store,
            persist_file: self.persist_file.clone(),
            schema: self.schema()?,
            target: self.target(),
            lock_timeout: self.lock_timeout,
            netns: self.netns.clone(),
            env: self.env,
        })
    }

    /// The boot files to check for overrides: under `--boot-root` when given; else `/` for the
    /// host's own /proc/sys only (boot never applies sysctl.d to a fake tree or a child
    /// namespace).
    pub fn boot_files(&self) -> Option<BootFiles> {
        match &self.boot_root {
            Some(root) => Some(BootFiles::under(root)),
            None if self.netns.is_none() && self.root == Path::new(PROC_SYS) => {
                Some(BootFiles::under(Path::new("/")))
            }
            None => None,
        }
    }

    /// Whether a detached watcher can be started by systemd-run: not from a network namespace
    /// that has no name under /run/netns (a transient unit starts in the host's namespace and
    /// could not find it; a forked watcher inherits it).
    pub fn watcher_can_leave(&self) -> bool {
        self.netns.is_some() || !matches!(implicit_netns(), Some(None))
    }

    /// The global flags that rebuild this context in a detached watcher (paths made absolute:
    /// a systemd unit starts in `/`). The watcher never persists.
    pub fn watcher_args(&self) -> Result<Vec<OsString>> {
        let abs = |p: &Path| -> Result<OsString> {
            std::path::absolute(p)
                .map(PathBuf::into_os_string)
                .map_err(|e| Error::io("resolve", p, e))
        };
        let mut args: Vec<OsString> = vec![
            "--root".into(),
            abs(&self.root)?,
            "--state-dir".into(),
            abs(&self.state_dir)?,
            "--lock-timeout".into(),
            self.lock_timeout.as_secs().to_string().into(),
            "--color".into(),
            "never".into(),
            "--no-persist".into(),
        ];
        match (&self.netns, implicit_netns()) {
            (Some(ns), _) => {
                let ns = match ns.contains('/') {
                    true => abs(Path::new(ns))?,
                    false => ns.into(),
                };
                args.extend(["--netns".into(), ns]);
            }
            // `ip netns exec NAME sysprof …`: no --netns, but a named namespace all the same.
            (None, Some(Some(name))) => args.extend(["--netns".into(), name.into()]),
            (None, _) => {}
        }
        if let Some(schema) = &self.schema_dir {
            args.extend(["--schema".into(), abs(schema)?]);
        }
        Ok(args)
    }
}
