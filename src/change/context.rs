//! The context every command runs in: sysctl tree, state store, persisted file, schema, target.
//!
//! The CLI builds it once from flags; the core never reads argv, the environment or `/` on its
//! own. Tests build the same context over a fake tree or inside a network namespace.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::change::store::{
    KeyChange, PersistChange, ProfileRef, RECORD_FORMAT, Record, RecordKind, Store,
};
use crate::kernel::SysctlTree;
use crate::schema::Schema;
use crate::schema::validate::Target;

/// Who and where, stamped on every record.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `uid(name)`.
    pub user: String,
    /// Host name.
    pub host: String,
    /// Kernel release string.
    pub kernel: String,
}

impl Identity {
    /// Reads the running process's identity.
    pub fn current() -> Self {
        let uid = nix::unistd::getuid().as_raw();
        let name = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|passwd| user_name(&passwd, uid))
            .unwrap_or_default();
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Self {
            user: format!("{uid}({name})"),
            host,
            kernel,
        }
    }
}

/// The name of `uid` in passwd(5) text. Read directly rather than through NSS (`getpwuid`): the
/// release binary is linked statically (see scripts/build-static), where NSS would need glibc's
/// shared modules at run time; a user known only to a directory service shows as its uid alone.
fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (id.parse() == Ok(uid)).then(|| name.to_owned())
    })
}

/// Everything the core needs from outside.
pub struct Context {
    /// The sysctl tree (already inside `--netns`, if given).
    pub tree: SysctlTree,
    /// The state store.
    pub store: Store,
    /// The persisted sysctl.d file, or None when persisting is off.
    pub persist_file: Option<PathBuf>,
    /// The schema.
    pub schema: Schema,
    /// What profiles are validated for.
    pub target: Target,
    /// How long to wait for the state lock.
    pub lock_timeout: Duration,
    /// The network namespace entered, if any.
    pub netns: Option<String>,
    /// Who and where, asked only when a record is made (a user lookup reads /etc/passwd).
    pub identity: fn() -> Identity,
    /// The clock (tests may fix it).
    pub now: fn() -> SystemTime,
}

impl Context {
    /// A new record stamped with time, user, host, kernel and namespace.
    pub fn new_record(
        &self,
        seq: u64,
        kind: RecordKind,
        profile: Option<ProfileRef>,
        restores: Option<String>,
        changes: Vec<KeyChange>,
        persist: Option<PersistChange>,
    ) -> Record {
        let identity = (self.identity)();
        Record {
            format: RECORD_FORMAT,
            seq,
            kind,
            time: humantime::format_rfc3339_seconds((self.now)()).to_string(),
            user: identity.user,
            host: identity.host,
            kernel: identity.kernel,
            netns: self.netns.clone(),
            profile,
            restores,
            changes,
            persist,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::user_name;

    #[test]
    fn user_names_come_from_the_third_passwd_field() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n#comment\nbroken\nops:x:1000:1000::/home/ops:/bin/sh\n";
        assert_eq!(user_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_name(passwd, 1000).as_deref(), Some("ops"));
        assert_eq!(user_name(passwd, 1), None);
    }
}
