//! Integration tests of `sdx-crypto`, all in one binary so that the RSA 4096
//! test keys are generated once (see `helpers`).

mod helpers;
mod jwe;
mod jws;
mod keys;
mod oracle;
mod props;
