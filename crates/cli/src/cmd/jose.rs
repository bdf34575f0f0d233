//! `sdx keys generate`, `sdx keys show`, `sdx keys join`, `sdx sign`, `sdx verify`, `sdx encrypt`, `sdx decrypt`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use sdx_crypto::{Alg, PrivateKey, PublicKey, jwe, jws};

use crate::Outcome;
use crate::cmd::document;
use crate::io::{self, Input, MAX_INPUT_BYTES};

/// Content type written into JWS headers for signed SDX documents (canonical JSON).
pub const SDX_CTY: &str = "application/vnd.sdx+json";

/// Largest JWE read by `decrypt` (an encrypted input of [`MAX_INPUT_BYTES`], base64url-encoded).
const MAX_JWE_BYTES: usize = MAX_INPUT_BYTES / 3 * 4 + 64 * 1024;

fn private_key(path: &Path) -> Result<PrivateKey> {
    let pem = io::read_key(path)?;
    PrivateKey::from_pkcs8_pem(&pem).with_context(|| format!("{} is not a usable PKCS#8 private key", path.display()))
}

fn public_key(path: &Path) -> Result<PublicKey> {
    let jwk = io::read_key(path)?;
    PublicKey::from_jwk(&jwk).with_context(|| format!("{} is not a usable public JWK", path.display()))
}

/// The keys of a JWK or JWK set file.
fn public_keys(path: &Path) -> Result<Vec<PublicKey>> {
    let text = io::read_key(path)?;
    PublicKey::from_jwk_set(&text).with_context(|| format!("{} is not a usable public JWK or JWK set", path.display()))
}

/// `sdx keys show FILE`: each key's algorithm, kid and thumbprint on standard output; [`Outcome::Invalid`] if a
/// kid is not its key's thumbprint.
pub fn show(path: &Path) -> Result<Outcome> {
    let keys = public_keys(path)?;
    let mut outcome = Outcome::Valid;
    println!("{}{}", path.display(), if keys.len() > 1 { format!(" ({} keys)", keys.len()) } else { String::new() });
    for key in &keys {
        let thumbprint = key.thumbprint();
        println!("  alg         {}", key.alg().as_str());
        match key.rsa_bits() {
            Some(bits) => println!("  key         RSA {bits} bits"),
            None => println!("  key         EC P-256"),
        }
        println!("  kid         {}", key.kid());
        println!("  thumbprint  {thumbprint} (RFC 7638, SHA-256)");
        if key.kid() != thumbprint {
            eprintln!(
                "{}: the kid {} is not its key's thumbprint: the file was changed, or is not the key its owner made",
                path.display(),
                key.kid()
            );
            outcome = Outcome::Invalid;
        }
    }
    Ok(outcome)
}

/// `sdx keys join FILE…`: one JWK set of the public keys in the files (JWKs or JWK sets), each key once, in order,
/// on standard output.
pub fn join(paths: &[std::path::PathBuf]) -> Result<Outcome> {
    let (mut keys, mut seen) = (Vec::new(), std::collections::HashSet::new());
    for path in paths {
        for key in public_keys(path)? {
            if seen.insert((key.alg(), key.thumbprint())) {
                keys.push(key);
            }
        }
    }
    if keys.len() > sdx_crypto::key::MAX_JWK_SET_KEYS {
        bail!("{} keys; a JWK set holds at most {}", keys.len(), sdx_crypto::key::MAX_JWK_SET_KEYS);
    }
    let set = serde_json::json!({ "keys": keys.iter().map(PublicKey::to_jwk).collect::<Vec<_>>() });
    println!("{set}");
    Ok(Outcome::Valid)
}

/// `sdx keys generate --alg ALG --out DIR`
pub fn generate(alg: &str, out: &Path, force: bool) -> Result<Outcome> {
    let alg =
        Alg::parse(alg).map_err(|_| anyhow::anyhow!("unknown --alg `{alg}`: use ES256, PS512 or RSA-OAEP-256"))?;
    let private_path = out.join("private.pem");
    if private_path.exists() && !force {
        bail!("{} exists; refusing to overwrite a private key (use --force)", private_path.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let key = PrivateKey::generate(alg).context("key generation failed")?;
    let public = key.public_key(alg)?;
    write_private(&private_path, key.to_pkcs8_pem().as_bytes())?;
    let jwk_path = out.join("public.jwk");
    std::fs::write(&jwk_path, format!("{}\n", public.to_jwk_string()))
        .with_context(|| format!("cannot write {}", jwk_path.display()))?;
    eprintln!("wrote {} and {} ({}, kid {})", private_path.display(), jwk_path.display(), alg.as_str(), public.kid());
    Ok(Outcome::Valid)
}

fn write_private(path: &Path, pem: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(pem).with_context(|| format!("cannot write {}", path.display()))
}

/// `sdx sign --key private.pem FILE`: validates the document, signs its canonical JSON form.
pub fn sign(key: &Path, file: &Path) -> Result<Outcome> {
    let key = private_key(key)?;
    let m = match document::load(file)? {
        Ok((_, m)) => m,
        Err(diags) => {
            document::report(&io::name(file), &diags);
            eprintln!("{}: not signed: the document is invalid", io::name(file));
            return Ok(Outcome::Invalid);
        }
    };
    let payload = sdx_codec::json::canonical(&m);
    let jws = jws::sign(payload.as_bytes(), &key, key.signing_alg(), Some(SDX_CTY)).context("signing failed")?;
    io::stdout(format!("{jws}\n").as_bytes())?;
    Ok(Outcome::Valid)
}

/// `sdx verify --key public.jwk FILE`: the signature, then the signed document.
pub fn verify(key: &Path, file: &Path, print: bool) -> Result<Outcome> {
    let key = public_key(key)?;
    let name = io::name(file);
    let compact = match io::read(file, MAX_INPUT_BYTES)? {
        Input::TooLarge => {
            eprintln!("{name}: error[tooLarge]: larger than {MAX_INPUT_BYTES} bytes");
            return Ok(Outcome::Invalid);
        }
        Input::Bytes(b) => b,
    };
    let Ok(compact) = std::str::from_utf8(&compact) else {
        eprintln!("{name}: error[signatureInvalid]: not a JWS (not ASCII text)");
        return Ok(Outcome::Invalid);
    };
    let verified = match jws::verify(compact.trim(), &key) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{name}: error[{}]: {e}", e.code());
            return Ok(Outcome::Invalid);
        }
    };
    match sdx_codec::json::decode(&verified.payload) {
        Ok(m) => {
            let issues = sdx_codec::validate::check(&m);
            if !issues.is_empty() {
                document::report(&name, &issues);
                eprintln!("{name}: the signature is valid but the signed document is not");
                return Ok(Outcome::Invalid);
            }
            if sdx_codec::json::canonical(&m).as_bytes() != verified.payload.as_slice() {
                eprintln!("{name}: error[signatureInvalid]: the signed payload is not in canonical form (RFC 8785)");
                return Ok(Outcome::Invalid);
            }
            eprintln!(
                "{name}: signature valid ({}, kid {}) over {} {}",
                verified.header.alg.as_str(),
                key.kid(),
                m.header.message_type,
                m.header.message_id
            );
            if print {
                io::stdout(sdx_codec::json::encode(&m).as_bytes())?;
            }
            Ok(Outcome::Valid)
        }
        Err(diags) => {
            document::report(&name, &diags);
            eprintln!("{name}: the signature is valid but the payload is not an SDX document");
            Ok(Outcome::Invalid)
        }
    }
}

/// `sdx encrypt --to public.jwk FILE`: any file (a document, or a JWS from `sdx sign`).
pub fn encrypt(to: &Path, file: &Path) -> Result<Outcome> {
    let key = public_key(to)?;
    if key.alg() != Alg::RsaOaep256 {
        bail!(
            "{} is a {} key; encryption needs an RSA-OAEP-256 key (sdx keys generate --alg RSA-OAEP-256)",
            to.display(),
            key.alg().as_str()
        );
    }
    let bytes = match io::read(file, MAX_INPUT_BYTES)? {
        Input::TooLarge => {
            eprintln!("{}: error[tooLarge]: larger than {MAX_INPUT_BYTES} bytes", io::name(file));
            return Ok(Outcome::Invalid);
        }
        Input::Bytes(b) => b,
    };
    let cty = match sdx_codec::detect(&bytes) {
        Some(sdx_codec::Format::Json) => Some("application/json"),
        Some(sdx_codec::Format::Xml) => Some("application/xml"),
        None if looks_like_jws(&bytes) => Some("JOSE"),
        None => None,
    };
    let jwe = jwe::encrypt(&bytes, &key, cty).context("encryption failed")?;
    io::stdout(format!("{jwe}\n").as_bytes())?;
    Ok(Outcome::Valid)
}

fn looks_like_jws(b: &[u8]) -> bool {
    let t = b.trim_ascii();
    t.iter().filter(|c| **c == b'.').count() == 2
        && t.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `sdx decrypt --key private.pem FILE`
pub fn decrypt(key: &Path, file: &Path) -> Result<Outcome> {
    let key = private_key(key)?;
    let name = io::name(file);
    let bytes = match io::read(file, MAX_JWE_BYTES)? {
        Input::TooLarge => {
            eprintln!("{name}: error[tooLarge]: larger than {MAX_JWE_BYTES} bytes");
            return Ok(Outcome::Invalid);
        }
        Input::Bytes(b) => b,
    };
    let Ok(compact) = std::str::from_utf8(&bytes) else {
        eprintln!("{name}: error[decryptionFailed]: not a JWE (not ASCII text)");
        return Ok(Outcome::Invalid);
    };
    match jwe::decrypt(compact.trim(), &key) {
        Ok(d) => {
            io::stdout(&d.plaintext)?;
            Ok(Outcome::Valid)
        }
        Err(e) => {
            eprintln!("{name}: error[{}]: {e}", e.code());
            Ok(Outcome::Invalid)
        }
    }
}
