//! What [`PolicySet::parse`](super::PolicySet::parse) reports: errors that refuse a file and
//! warnings that do not.

use std::{
    fmt,
    path::{Path, PathBuf},
};

/// One mistake in a policy file: where it is and what was expected there.
#[derive(Debug, Clone)]
pub struct PolicyError {
    /// The policy file.
    pub file: PathBuf,
    /// 1-based line of the offending key or value; 0 when the file could not be read.
    pub line: usize,
    /// Path of the offending key, such as `partner[0].rule[2].redact[1]`; empty for a TOML
    /// syntax error or a file that could not be read.
    pub key: String,
    /// What an acceptable value looks like (for a syntax error, the parser's message).
    pub expected: String,
}

impl PolicyError {
    /// An error at `line` of `file`.
    pub fn new(file: &Path, line: usize, key: &str, expected: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line,
            key: key.to_owned(),
            expected: expected.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    /// `FILE:LINE: key `KEY`: expected EXPECTED`; the key part is left out when there is no
    /// key, and the line when there is no line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": expected {}", self.expected)
    }
}

/// Every mistake found in a policy file, in the order of their lines. Never empty when
/// returned by [`PolicySet::parse`](super::PolicySet::parse).
#[derive(Debug)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// Something in a valid policy file that is probably not what its author meant, such as a
/// rule that can never match.
#[derive(Debug, Clone)]
pub struct PolicyWarning {
    /// The policy file.
    pub file: PathBuf,
    /// 1-based line the warning is about.
    pub line: usize,
    /// What is wrong, naming the partner and rule.
    pub message: String,
}

impl fmt::Display for PolicyWarning {
    /// `FILE:LINE: MESSAGE`, or `FILE: MESSAGE` when the warning has no line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file.display(), self.message),
            line => write!(f, "{}:{line}: {}", self.file.display(), self.message),
        }
    }
}
