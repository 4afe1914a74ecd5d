//! Any bytes imported as a list in the `bis-dpl` format: an import or an error, never a panic.

#![no_main]

use entente::watchlist::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| entente_fuzz::import(Format::BisDpl, data));
