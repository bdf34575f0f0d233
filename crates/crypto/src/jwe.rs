//! JWE compact serialization (RFC 7516) in the FIT-Connect profile:
//! key management `RSA-OAEP-256`, content encryption `A256GCM`, nothing else.
//!
//! # Header produced by [`encrypt`]
//! `{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":…,"cty":…}`: `kid` is the
//! recipient key's [`PublicKey::kid`], `cty` is present only when the caller
//! passes one (FIT-Connect: `application/json` for metadata and JSON data).
//! No `typ` and no `zip`.
//!
//! [`encrypt`] draws a fresh 256-bit content encryption key and 96-bit IV from
//! the system CSPRNG; the AAD is the ASCII of the base64url protected header
//! (RFC 7516 §5.1 step 14). A [`ContentKey`] is one content key wrapped once
//! for several JWEs to one recipient, each with a fresh IV; a recipient's
//! [`UnwrapCache`] ([`decrypt_cached`]) then unwraps it once.
//!
//! # What [`decrypt`] refuses
//! Inputs over [`MAX_COMPACT_LEN`]; anything but five canonical base64url
//! parts; duplicate-member or non-object headers; any `alg` but
//! RSA-OAEP-256 or `enc` but A256GCM; `zip` (compression before encryption
//! leaks plaintext length information and invites decompression bombs);
//! `crit`; a `kid` that is not the key's; an IV that is not 96 bits or a tag
//! that is not 128 bits; and every authentication failure. A wrong key, a
//! broken key wrap and a tampered ciphertext all give the same
//! [`Error::DecryptionFailed`]: a failed OAEP unwrap continues with a random
//! key (RFC 7516 §11.5) so that the two cases are not told apart.

use crate::alg::{Alg, truncate};
use crate::b64;
use crate::error::{Error, Result};
use crate::json;
use crate::jws::{reject_common, take_str};
use crate::key::{PrivateInner, PrivateKey, PublicKey, PublicMaterial, mismatch};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey};
use serde_json::{Map, Value};

/// Largest JWE compact serialization accepted or produced: 64 MiB (a
/// plaintext of about 48 MiB, enough for ticket attachments).
pub const MAX_COMPACT_LEN: usize = 64 * 1024 * 1024;
/// Largest base64url-encoded protected header accepted: 16 KiB.
pub const MAX_HEADER_LEN: usize = 16 * 1024;

const CEK_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// Content encryption algorithms (`enc`). Only A256GCM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Enc {
    /// AES-256 in Galois/Counter Mode, 96-bit IV, 128-bit tag (RFC 7518 §5.3).
    A256Gcm,
}

impl Enc {
    /// The JOSE name, `"A256GCM"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Enc::A256Gcm => "A256GCM",
        }
    }
}

/// The protected header of a JWE.
#[derive(Debug, Clone, PartialEq)]
pub struct JweHeader {
    /// Key management algorithm: always [`Alg::RsaOaep256`].
    pub alg: Alg,
    /// Content encryption: always [`Enc::A256Gcm`].
    pub enc: Enc,
    /// Recipient key id, if present.
    pub kid: Option<String>,
    /// Media type of the plaintext (`cty`), if present.
    pub cty: Option<String>,
    /// Media type of the whole JWE (`typ`), if present.
    pub typ: Option<String>,
    /// All other header members, uninterpreted.
    pub extra: Map<String, Value>,
}

/// A decrypted JWE.
#[derive(Debug, Clone, PartialEq)]
pub struct Decrypted {
    /// The protected header.
    pub header: JweHeader,
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// The GCM authentication tag as it appeared (base64url). FIT-Connect's
    /// `accept-submission` event quotes these tags as proof of receipt.
    pub auth_tag: String,
}

/// Encrypts `plaintext` to `to` (an RSA-OAEP-256 public key), with a content key of its own.
///
/// # Errors
/// [`Error::AlgorithmKeyMismatch`] if `to` is not published for
/// RSA-OAEP-256, [`Error::InputTooLarge`] if the result would exceed
/// [`MAX_COMPACT_LEN`], [`Error::CryptoFailure`] if the library fails.
pub fn encrypt(plaintext: &[u8], to: &PublicKey, cty: Option<&str>) -> Result<String> {
    ContentKey::new(to)?.encrypt(plaintext, cty)
}

/// A content encryption key, wrapped once to one recipient (RSA-OAEP-256), for several JWEs to it: each is an
/// ordinary JWE of this profile — the same encrypted key, its own random 96-bit IV — that any holder of the
/// recipient key decrypts on its own; a recipient with an [`UnwrapCache`] unwraps the key once. This takes the
/// RSA private-key operation off all but the first message of a sender to a recipient.
///
/// AES-GCM with random IVs stays within its bound (NIST SP 800-38D §8.3: at most 2^32 invocations per key) far
/// below [`ContentKey::MAX_USES`]; [`ContentKey::is_spent`] says when to draw a new one (after that many uses or
/// [`ContentKey::MAX_AGE`]).
pub struct ContentKey {
    cek: [u8; CEK_LEN],
    /// The wrapped key, base64url.
    wrapped_b64: String,
    kid: String,
    uses: std::sync::atomic::AtomicU64,
    created: std::time::Instant,
}

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentKey").field("kid", &self.kid).field("uses", &self.uses).finish_non_exhaustive()
    }
}

impl ContentKey {
    /// Uses of one content key before a new one is drawn (2^20, a 4,096th of the AES-GCM random-IV bound).
    pub const MAX_USES: u64 = 1 << 20;
    /// Age of a content key after which a new one is drawn.
    pub const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

    /// A fresh content key, wrapped to `to`.
    ///
    /// # Errors
    /// [`Error::AlgorithmKeyMismatch`] if `to` is not published for RSA-OAEP-256, [`Error::CryptoFailure`].
    pub fn new(to: &PublicKey) -> Result<ContentKey> {
        let PublicMaterial::Rsa { encrypter, .. } = to.material() else {
            return Err(mismatch(Alg::RsaOaep256, "EC P-256"));
        };
        if to.alg() != Alg::RsaOaep256 {
            return Err(mismatch(Alg::RsaOaep256, to.alg().as_str()));
        }
        let oaep =
            OaepPublicEncryptingKey::new(encrypter.clone()).map_err(|_| Error::CryptoFailure("RSA-OAEP key setup"))?;
        let mut cek = [0u8; CEK_LEN];
        SystemRandom::new().fill(&mut cek).map_err(|_| Error::CryptoFailure("random CEK"))?;
        let mut wrapped = vec![0u8; oaep.ciphertext_size()];
        let wrapped_len = oaep
            .encrypt(&OAEP_SHA256_MGF1SHA256, &cek, &mut wrapped, None)
            .map_err(|_| Error::CryptoFailure("RSA-OAEP-256 key wrap"))?
            .len();
        wrapped.truncate(wrapped_len);
        Ok(ContentKey {
            cek,
            wrapped_b64: b64::encode(&wrapped),
            kid: to.kid().to_owned(),
            uses: std::sync::atomic::AtomicU64::new(0),
            created: std::time::Instant::now(),
        })
    }

    /// The recipient key's id.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Whether a new content key should be drawn (used [`ContentKey::MAX_USES`] times or older than
    /// [`ContentKey::MAX_AGE`]).
    #[must_use]
    pub fn is_spent(&self) -> bool {
        self.uses.load(std::sync::atomic::Ordering::Relaxed) >= Self::MAX_USES
            || self.created.elapsed() >= Self::MAX_AGE
    }

    /// Encrypts `plaintext` under this content key with a fresh random IV.
    ///
    /// # Errors
    /// [`Error::InputTooLarge`] if the result would exceed [`MAX_COMPACT_LEN`], [`Error::CryptoFailure`].
    pub fn encrypt(&self, plaintext: &[u8], cty: Option<&str>) -> Result<String> {
        let mut header = format!(r#"{{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":{}"#, json::quote(&self.kid));
        if let Some(cty) = cty {
            header.push_str(r#","cty":"#);
            header.push_str(&json::quote(cty));
        }
        header.push('}');
        let header_b64 = b64::encode(header.as_bytes());
        let total = header_b64.len()
            + self.wrapped_b64.len()
            + b64::encoded_len(NONCE_LEN)
            + b64::encoded_len(plaintext.len())
            + b64::encoded_len(TAG_LEN)
            + 4;
        if total > MAX_COMPACT_LEN || header_b64.len() > MAX_HEADER_LEN {
            return Err(Error::InputTooLarge { what: "JWE compact serialization", limit: MAX_COMPACT_LEN });
        }
        let mut iv = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut iv).map_err(|_| Error::CryptoFailure("random IV"))?;
        self.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let aead = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &self.cek).map_err(|_| Error::CryptoFailure("AES-256-GCM key"))?,
        );
        let mut buf = plaintext.to_vec();
        let tag = aead
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(header_b64.as_bytes()), &mut buf)
            .map_err(|_| Error::CryptoFailure("AES-256-GCM encryption"))?;
        let mut out = String::with_capacity(total);
        out.push_str(&header_b64);
        out.push('.');
        out.push_str(&self.wrapped_b64);
        for part in [iv.as_slice(), &buf, tag.as_ref()] {
            out.push('.');
            out.push_str(&b64::encode(part));
        }
        Ok(out)
    }
}

/// (recipient key id, encrypted key) of a cached content key.
type Unwrapped = (String, Vec<u8>);

/// Content keys a recipient has unwrapped, by recipient key id and encrypted key ([`decrypt_cached`]): a sender's
/// [`ContentKey`] costs the recipient one RSA private-key operation, not one per message. Only keys whose JWE
/// authenticated are kept (a forged wrapped key is never cached); at most `capacity`, then the cache starts
/// afresh.
#[derive(Debug)]
pub struct UnwrapCache {
    keys: std::sync::Mutex<std::collections::HashMap<Unwrapped, [u8; CEK_LEN]>>,
    capacity: usize,
}

impl UnwrapCache {
    /// An empty cache for at most `capacity` content keys.
    #[must_use]
    pub fn new(capacity: usize) -> UnwrapCache {
        UnwrapCache { keys: std::sync::Mutex::new(std::collections::HashMap::new()), capacity: capacity.max(1) }
    }

    /// How many content keys it holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.lock().map(|k| k.len()).unwrap_or(0)
    }

    /// Whether it holds none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, kid: &str, ek: &[u8]) -> Option<[u8; CEK_LEN]> {
        self.keys.lock().ok()?.get(&(kid.to_owned(), ek.to_vec())).copied()
    }

    fn put(&self, kid: &str, ek: Vec<u8>, cek: [u8; CEK_LEN]) {
        if let Ok(mut keys) = self.keys.lock() {
            if keys.len() >= self.capacity {
                keys.clear();
            }
            keys.insert((kid.to_owned(), ek), cek);
        }
    }
}

/// Decrypts a JWE compact serialization with `key`. See the module docs for
/// everything that is refused.
///
/// # Errors
/// [`Error::InputTooLarge`], [`Error::MalformedJose`],
/// [`Error::AlgorithmNotAllowed`], [`Error::AlgorithmKeyMismatch`] (EC key),
/// [`Error::UnsupportedHeader`], [`Error::KidMismatch`],
/// [`Error::DecryptionFailed`].
pub fn decrypt(compact: &str, key: &PrivateKey) -> Result<Decrypted> {
    decrypt_with(compact, key, None)
}

/// [`decrypt`], with the content keys unwrapped before kept in `cache` (see [`ContentKey`]): a JWE whose
/// encrypted key is in the cache is opened with AES-GCM alone; every check of [`decrypt`] applies.
///
/// # Errors
/// As [`decrypt`].
pub fn decrypt_cached(compact: &str, key: &PrivateKey, cache: &UnwrapCache) -> Result<Decrypted> {
    decrypt_with(compact, key, Some(cache))
}

fn decrypt_with(compact: &str, key: &PrivateKey, cache: Option<&UnwrapCache>) -> Result<Decrypted> {
    if compact.len() > MAX_COMPACT_LEN {
        return Err(Error::InputTooLarge { what: "JWE compact serialization", limit: MAX_COMPACT_LEN });
    }
    let mut it = compact.split('.');
    let (Some(h), Some(ek), Some(iv), Some(ct), Some(tag), None) =
        (it.next(), it.next(), it.next(), it.next(), it.next(), it.next())
    else {
        return Err(Error::malformed("JWE compact serialization must have exactly 5 parts"));
    };
    if h.len() > MAX_HEADER_LEN {
        return Err(Error::InputTooLarge { what: "JWE protected header", limit: MAX_HEADER_LEN });
    }
    let header = parse_header(h)?;
    let PrivateInner::Rsa { decrypting, .. } = key.inner() else {
        return Err(mismatch(Alg::RsaOaep256, key.key_type()));
    };
    if let Some(kid) = &header.kid
        && kid != key.kid()
    {
        return Err(Error::KidMismatch { header: truncate(kid), key: key.kid().to_owned() });
    }
    let decode = |part: &str, name: &str| {
        b64::decode(part).ok_or_else(|| Error::malformed(format!("JWE {name} is not canonical base64url")))
    };
    let ek = decode(ek, "encrypted key")?;
    let iv: [u8; NONCE_LEN] =
        decode(iv, "IV")?.try_into().map_err(|_| Error::malformed("JWE IV must be 96 bits for A256GCM"))?;
    let mut buf = decode(ct, "ciphertext")?;
    let tag_bytes = decode(tag, "authentication tag")?;
    if tag_bytes.len() != TAG_LEN {
        return Err(Error::malformed("JWE authentication tag must be 128 bits for A256GCM"));
    }

    let cached = cache.and_then(|c| c.get(key.kid(), &ek));
    let cek = match cached {
        Some(cek) => cek,
        None => {
            // Unwrap the CEK. On any failure continue with a random CEK so that a
            // bad key wrap and a bad tag take the same path (RFC 7516 §11.5).
            let rng = SystemRandom::new();
            let mut cek = [0u8; CEK_LEN];
            rng.fill(&mut cek).map_err(|_| Error::CryptoFailure("random CEK"))?;
            let oaep = OaepPrivateDecryptingKey::new(decrypting.clone())
                .map_err(|_| Error::CryptoFailure("RSA-OAEP key setup"))?;
            let mut unwrapped = vec![0u8; oaep.min_output_size()];
            if ek.len() == oaep.key_size_bytes()
                && let Ok(out) = oaep.decrypt(&OAEP_SHA256_MGF1SHA256, &ek, &mut unwrapped, None)
                && out.len() == CEK_LEN
            {
                cek.copy_from_slice(out);
            }
            cek
        }
    };

    let aead =
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).map_err(|_| Error::CryptoFailure("AES-256-GCM key"))?);
    aead.open_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(h.as_bytes()), &tag_bytes, &mut buf)
        .map_err(|_| Error::DecryptionFailed)?;
    if let (Some(c), None) = (cache, cached) {
        // Authenticated: the wrapped key is the sender's, not a forgery.
        c.put(key.kid(), ek, cek);
    }
    Ok(Decrypted { header, plaintext: buf, auth_tag: tag.to_owned() })
}

/// Returns the base64url authentication tag (fifth part) of a JWE compact
/// serialization without decrypting it, for FIT-Connect's proof of receipt.
///
/// # Errors
/// [`Error::MalformedJose`] unless the input has five parts and a canonical
/// 128-bit tag; [`Error::InputTooLarge`] above [`MAX_COMPACT_LEN`].
pub fn auth_tag(compact: &str) -> Result<&str> {
    if compact.len() > MAX_COMPACT_LEN {
        return Err(Error::InputTooLarge { what: "JWE compact serialization", limit: MAX_COMPACT_LEN });
    }
    let parts: Vec<&str> = compact.splitn(6, '.').collect();
    if parts.len() != 5 {
        return Err(Error::malformed("JWE compact serialization must have exactly 5 parts"));
    }
    let tag = parts[4];
    match b64::decode(tag) {
        Some(t) if t.len() == TAG_LEN => Ok(tag),
        _ => Err(Error::malformed("JWE authentication tag must be 128 bits of canonical base64url")),
    }
}

fn parse_header(h: &str) -> Result<JweHeader> {
    let bytes = b64::decode(h).ok_or_else(|| Error::malformed("JWE protected header is not canonical base64url"))?;
    let mut map = json::parse_object(&bytes, "JWE protected header")?;
    let alg = match map.remove("alg") {
        Some(Value::String(a)) => a,
        Some(_) => return Err(Error::malformed("JWE \"alg\" must be a string")),
        None => return Err(Error::malformed("JWE protected header has no \"alg\"")),
    };
    if alg != Alg::RsaOaep256.as_str() {
        return Err(Error::AlgorithmNotAllowed(format!("JWE alg {:?} (only RSA-OAEP-256)", truncate(&alg))));
    }
    let enc = match map.remove("enc") {
        Some(Value::String(e)) => e,
        Some(_) => return Err(Error::malformed("JWE \"enc\" must be a string")),
        None => return Err(Error::malformed("JWE protected header has no \"enc\"")),
    };
    if enc != Enc::A256Gcm.as_str() {
        return Err(Error::AlgorithmNotAllowed(format!("JWE enc {:?} (only A256GCM)", truncate(&enc))));
    }
    reject_common(&map)?;
    if map.contains_key("zip") {
        return Err(Error::UnsupportedHeader("zip (compressed plaintext is not accepted)".into()));
    }
    let kid = take_str(&mut map, "kid")?;
    let cty = take_str(&mut map, "cty")?;
    let typ = take_str(&mut map, "typ")?;
    Ok(JweHeader { alg: Alg::RsaOaep256, enc: Enc::A256Gcm, kid, cty, typ, extra: map })
}
