//! envelope (in progress).
