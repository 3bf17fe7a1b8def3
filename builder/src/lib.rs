//! hermod: build out-of-tree Linux kernel modules once, hermetically, into reproducible .debs.
//!
//! The pipeline, one module per stage: source → key → cache → rootfs → sandbox → .deb → store.
//! See ARCHITECTURE.md for the codemap, the layers of these modules (a module uses only its
//! own layer and those below) and the invariants.
#![forbid(unsafe_code)]

pub mod apt;
#[doc(hidden)]
pub mod bombs;
pub mod bounded;
pub mod build;
pub mod build_script;
pub mod cache;
pub mod cache_admin;
pub mod cli;
pub mod compress;
pub mod config;
pub mod debpkg;
pub mod dkms;
pub mod exit;
pub mod failures;
pub mod farm;
pub(crate) mod flock;
#[doc(hidden)]
pub mod fuzzing;
pub mod input;
pub mod interrupt;
pub mod key;
pub mod keyinfo;
pub mod limits;
pub mod load_test;
pub mod module_signing;
pub mod oci_bundle;
pub mod pipeline;
pub mod plan;
pub mod platform;
pub mod repo;
pub mod rootfs;
mod sandbox_io;
pub mod say;
pub mod shared_cache;
pub mod source;
pub mod status;
pub mod store;
pub mod sync;
pub mod trust;
pub mod verify;
pub mod watch;
pub mod work;
