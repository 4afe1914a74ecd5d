//! The `entente` command.
fn main() {}
