#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod alg;
mod b64;
pub mod error;
mod json;
pub mod jwe;
pub mod jws;
pub mod key;

pub use alg::Alg;
pub use error::{Error, Result};
pub use jwe::{Decrypted, JweHeader};
pub use jws::{JwsHeader, Verified};
pub use key::{PrivateKey, PublicKey};
