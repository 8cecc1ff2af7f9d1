//! `cairn keys`: generate a member's signing and sealing keys.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use cairn_identity::{SealingKey, SigningKey};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Generate an Ed25519 signing key and an X25519 sealing key (PKCS#8
    /// PEM) and print the directory entries for them.
    Generate {
        /// The member id the keys are for.
        #[arg(long)]
        member: String,
        /// Directory to write `signing.key.pem` and `sealing.key.pem` to.
        #[arg(long)]
        out: PathBuf,
        /// Key id suffix (ids are `<member>-sign-<suffix>`, `<member>-seal-<suffix>`).
        #[arg(long, default_value = "1")]
        suffix: String,
    },
}

pub fn run(cmd: KeysCommand, json: bool) -> anyhow::Result<u8> {
    match cmd {
        KeysCommand::Generate {
            member,
            out,
            suffix,
        } => {
            cairn_identity::MemberId::parse(&member)
                .map_err(|e| anyhow::anyhow!("--member {member:?}: {e}"))?;
            let sign_path = out.join("signing.key.pem");
            let seal_path = out.join("sealing.key.pem");
            for p in [&sign_path, &seal_path] {
                if p.exists() {
                    bail!(
                        "{} already exists; refusing to overwrite a key",
                        p.display()
                    );
                }
            }
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let (sign, sign_pem) = SigningKey::generate(format!("{member}-sign-{suffix}"))?;
            let (seal, seal_pem) = SealingKey::generate(format!("{member}-seal-{suffix}"))?;
            write_private(&sign_path, sign_pem.as_bytes())?;
            write_private(&seal_path, seal_pem.as_bytes())?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "signing_key": {"id": sign.key_id(), "public_key": sign.verifying_key().to_base64(), "file": sign_path},
                        "sealing_key": {"id": seal.key_id(), "public_key": seal.public_key().to_base64(), "file": seal_path},
                    })
                );
            } else {
                println!("wrote {} and {}", sign_path.display(), seal_path.display());
                println!("add to the directory entry of {member}:\n");
                println!(
                    "sealing_key = {{ id = \"{}\", public_key = \"{}\" }}\n",
                    seal.key_id(),
                    seal.public_key().to_base64()
                );
                println!(
                    "[[members.signing_keys]]\nid = \"{}\"\npublic_key = \"{}\"\nvalid_from = \"<RFC 3339 time>\"",
                    sign.key_id(),
                    sign.verifying_key().to_base64()
                );
            }
            Ok(crate::exit::OK)
        }
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    Ok(())
}
