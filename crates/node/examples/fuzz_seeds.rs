//! Seeds for the fuzz targets that need valid signed or encrypted input to get past their first check: JWS, JWK and
//! JWK set, JWE (twice under one content key, for the unwrap cache), a hub envelope and a batch request carrying
//! it, a signed directory. Made with the fuzz workspace's throw-away keys (`fuzz/keys/`), so a mutated seed still
//! verifies up to the byte that was changed. `scripts/fuzz.sh` runs this before fuzzing.
//!
//! ```text
//! cargo run --release -p sdx-node --example fuzz_seeds -- fuzz/corpus
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sdx_crypto::{Alg, PrivateKey, jwe, jws};

fn main() -> Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).context("usage: fuzz_seeds CORPUS_DIR")?);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let ec = PrivateKey::from_pkcs8_pem(&std::fs::read_to_string(root.join("fuzz/keys/ec-p256.pem"))?)?;
    let rsa = PrivateKey::from_pkcs8_pem(&std::fs::read_to_string(root.join("fuzz/keys/rsa-3072.pem"))?)?;
    let rsa_public = rsa.public_key(Alg::RsaOaep256)?;

    let raw = std::fs::read(root.join("examples/01-wohngeld-forward.json"))?;
    let message = sdx_codec::json::decode(&raw).map_err(|d| anyhow::anyhow!("example 01: {d:?}"))?;
    let canonical = sdx_codec::json::canonical(&message);
    let signed = jws::sign(canonical.as_bytes(), &ec, Alg::Es256, Some("application/json"))?;

    write(&out, "jws_verify", "es256", &signed)?;
    write(&out, "jws_verify", "ps512", &jws::sign(canonical.as_bytes(), &rsa, Alg::Ps512, None)?)?;

    let ec_public = ec.public_key(Alg::Es256)?;
    write(&out, "jwk_parse", "es256", &ec_public.to_jwk_string())?;
    let set = serde_json::json!({ "keys": [ec_public.to_jwk(), rsa.public_key(Alg::Ps512)?.to_jwk()] });
    write(&out, "jwk_parse", "set", &set.to_string())?;

    let key = jwe::ContentKey::new(&rsa_public)?;
    write(&out, "jwe_decrypt", "one", &jwe::encrypt(signed.as_bytes(), &rsa_public, Some("application/jose"))?)?;
    write(&out, "jwe_decrypt", "shared-key-1", &key.encrypt(b"first", None)?)?;
    write(&out, "jwe_decrypt", "shared-key-2", &key.encrypt(signed.as_bytes(), None)?)?;

    let env = sdx_node::envelope::seal_with(&signed, &message.header, &key, &ec)?;
    write(&out, "peer_input", "envelope", &env)?;
    let batch = serde_json::json!({ "messages": [signed, env] });
    write(&out, "peer_input", "batch", &batch.to_string())?;

    let dir_json = std::fs::read(root.join("docs/examples/directory.json"))?;
    let dir = sdx_directory::LoadedDirectory::unverified(&dir_json)?;
    write(&out, "directory_load", "plain", &String::from_utf8(dir_json)?)?;
    write(&out, "directory_load", "signed", &sdx_directory::sign(dir.directory(), &ec)?)?;
    Ok(())
}

fn write(out: &Path, target: &str, name: &str, content: &str) -> Result<()> {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("seed-{name}"));
    std::fs::write(&path, content).with_context(|| format!("cannot write {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}
