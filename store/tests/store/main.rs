//! Integration tests: real redb files and blob files in temp dirs.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod crashes;
mod encoding;
mod memory;
mod objects;
mod records;
mod support;
mod transfer;
