//! exchange (in progress).
