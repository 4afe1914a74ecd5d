//! control (in progress).
