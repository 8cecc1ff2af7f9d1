//! `cairn profile add|list|show|remove`: named connection settings in
//! the user's config directory (`$CAIRN_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/cairn`, else `~/.config/cairn`; `profiles.toml`,
//! mode 0600), chosen with `--profile` or `CAIRN_PROFILE`: whose
//! credentials (a member folder or explicit files), the directory, the
//! services' addresses (and the local one to connect from), the log key,
//! the witness keys and quorum.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use crate::exit;

/// One profile.
#[derive(Clone, Debug, Default, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The member id (default: the member folder's).
    #[arg(long)]
    pub member: Option<String>,
    /// A member folder made by `cairn member init`.
    #[arg(long)]
    pub member_dir: Option<PathBuf>,
    /// Which of its certificates (default `cli`).
    #[arg(long)]
    pub cert_name: Option<String>,
    /// A dev PKI (`cairn dev pki`) instead of a member folder.
    #[arg(long)]
    pub pki: Option<PathBuf>,
    /// TLS certificate chain (PEM), instead of the folder's.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Its key.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Signing key (PKCS#8 PEM), instead of the folder's.
    #[arg(long, requires = "signing_key_id")]
    pub signing_key: Option<PathBuf>,
    /// Its key id in the directory.
    #[arg(long)]
    pub signing_key_id: Option<String>,
    /// Sealing key (PKCS#8 PEM), instead of the folder's.
    #[arg(long, requires = "sealing_key_id")]
    pub sealing_key: Option<PathBuf>,
    /// Its key id in the directory.
    #[arg(long)]
    pub sealing_key_id: Option<String>,
    /// The network directory file.
    #[arg(long)]
    pub directory: Option<PathBuf>,
    /// cairn-intake, host:port.
    #[arg(long)]
    pub intake: Option<String>,
    /// cairn-evals, host:port.
    #[arg(long)]
    pub evals: Option<String>,
    /// cairn-audit, host:port.
    #[arg(long)]
    pub audit: Option<String>,
    /// The audit log's verifier key (or a file holding it).
    #[arg(long)]
    pub log_key: Option<String>,
    /// A witness verifier key (or file); repeatable.
    #[arg(long = "witness")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<String>,
    /// How many witnesses must cosign (default: all).
    #[arg(long)]
    pub quorum: Option<usize>,
    /// The local address to connect from (a host with several).
    #[arg(long)]
    pub source: Option<std::net::IpAddr>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum ProfileCommand {
    /// Add (or with --replace, replace) a profile.
    Add {
        /// Its name.
        name: String,
        /// Replace a profile of that name.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        profile: Profile,
    },
    /// The profiles.
    List,
    /// One profile.
    Show {
        /// Its name.
        name: String,
    },
    /// Remove a profile.
    Remove {
        /// Its name.
        name: String,
    },
}

/// `profiles.toml` in the user's config directory.
pub fn file() -> anyhow::Result<PathBuf> {
    let dir = match (
        std::env::var_os("CAIRN_CONFIG_DIR"),
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    ) {
        (Some(d), _, _) => PathBuf::from(d),
        (None, Some(x), _) => PathBuf::from(x).join("cairn"),
        (None, None, Some(h)) => PathBuf::from(h).join(".config/cairn"),
        (None, None, None) => bail!("no config directory: set CAIRN_CONFIG_DIR or HOME"),
    };
    Ok(dir.join("profiles.toml"))
}

fn read_all(path: &Path) -> anyhow::Result<ProfilesFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            toml::from_str(&text).map_err(|e| anyhow!("{}: {}", path.display(), e.message()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ProfilesFile::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_all(path: &Path, all: &ProfilesFile) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("toml.new");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(toml::to_string_pretty(all)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// The profile `name`.
pub fn load(name: &str) -> anyhow::Result<Profile> {
    let path = file()?;
    let mut all = read_all(&path)?;
    all.profiles.remove(name).ok_or_else(|| {
        let known: Vec<&String> = all.profiles.keys().collect();
        anyhow!(
            "no profile {name:?} in {} (profiles: {known:?}); add one with `cairn profile add {name} …`",
            path.display()
        )
    })
}

fn absolute(p: &mut Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(path) = p.as_mut() {
        *path = std::path::absolute(&*path)
            .with_context(|| format!("{} has no absolute form", path.display()))?;
    }
    Ok(())
}

/// Checks a profile before it is stored: paths made absolute and present,
/// keys readable, addresses `host:port`.
fn checked(mut p: Profile) -> anyhow::Result<Profile> {
    for f in [
        &mut p.member_dir,
        &mut p.pki,
        &mut p.cert,
        &mut p.key,
        &mut p.signing_key,
        &mut p.sealing_key,
        &mut p.directory,
    ] {
        absolute(f)?;
        if let Some(path) = f.as_ref().filter(|p| !p.exists()) {
            bail!("{} does not exist", path.display());
        }
    }
    if p.member_dir.is_none() && p.pki.is_none() && p.cert.is_none() {
        bail!("say whose credentials: --member-dir, --pki with --member, or --cert and --key");
    }
    for (what, addr) in [
        ("intake", &p.intake),
        ("evals", &p.evals),
        ("audit", &p.audit),
    ] {
        if let Some(a) = addr {
            crate::connect::resolve(a).map_err(|e| anyhow!("--{what}: {e}"))?;
        }
    }
    for key in p.log_key.iter().chain(&p.witnesses) {
        crate::audit::read_key(key)?;
    }
    Ok(p)
}

pub fn run(cmd: ProfileCommand, json_out: bool) -> anyhow::Result<u8> {
    let path = file()?;
    let mut all = read_all(&path)?;
    match cmd {
        ProfileCommand::Add {
            name,
            replace,
            profile,
        } => {
            if !cairn_identity::spiffe::is_valid_name(&name) {
                bail!("profile name {name:?}: 2 to 32 of a-z, 0-9 and '-'");
            }
            if all.profiles.contains_key(&name) && !replace {
                bail!(
                    "profile {name:?} exists in {} (--replace to replace it)",
                    path.display()
                );
            }
            all.profiles.insert(name.clone(), checked(profile)?);
            write_all(&path, &all)?;
            if json_out {
                println!("{}", serde_json::json!({"profile": name, "file": path}));
            } else {
                println!("profile {name} saved in {}", path.display());
            }
        }
        ProfileCommand::List => {
            if json_out {
                println!("{}", serde_json::to_value(&all.profiles)?);
            } else {
                for name in all.profiles.keys() {
                    println!("{name}");
                }
            }
        }
        ProfileCommand::Show { name } => {
            let p = load(&name)?;
            if json_out {
                println!("{}", serde_json::to_value(&p)?);
            } else {
                print!("{}", toml::to_string_pretty(&p)?);
            }
        }
        ProfileCommand::Remove { name } => {
            if all.profiles.remove(&name).is_none() {
                bail!("no profile {name:?} in {}", path.display());
            }
            write_all(&path, &all)?;
            println!("profile {name} removed");
        }
    }
    Ok(exit::OK)
}
