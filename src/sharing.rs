//! The report kinds by the names used in policy files, report JSON and the command line.
//!
//! What may be shared with whom is decided by [`crate::policy`]; this module only names
//! the kinds.

use std::{fmt, str::FromStr};

use crate::pb::ItemKind;

/// An item kind as written in a partner's `share` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShareKind {
    /// Suspicious-transaction reports.
    SuspiciousTransaction,
    /// Licence denial notifications.
    DenialNotification,
    /// Enforcement alerts.
    EnforcementAlert,
}

impl ShareKind {
    /// All kinds, in the order they are documented.
    pub const ALL: [ShareKind; 3] = [
        ShareKind::SuspiciousTransaction,
        ShareKind::DenialNotification,
        ShareKind::EnforcementAlert,
    ];

    /// The name used in config files and report JSON.
    pub fn name(self) -> &'static str {
        match self {
            ShareKind::SuspiciousTransaction => "suspicious-transaction",
            ShareKind::DenialNotification => "denial-notification",
            ShareKind::EnforcementAlert => "enforcement-alert",
        }
    }

    /// The wire kind.
    pub fn item_kind(self) -> ItemKind {
        match self {
            ShareKind::SuspiciousTransaction => ItemKind::SuspiciousTransaction,
            ShareKind::DenialNotification => ItemKind::DenialNotification,
            ShareKind::EnforcementAlert => ItemKind::EnforcementAlert,
        }
    }

    /// The share kind of a wire kind, if it is a report kind.
    pub fn from_item_kind(kind: ItemKind) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.item_kind() == kind)
    }
}

impl fmt::Display for ShareKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ShareKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                "one of \"suspicious-transaction\", \"denial-notification\", \"enforcement-alert\""
                    .to_owned()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for kind in ShareKind::ALL {
            assert_eq!(kind.name().parse::<ShareKind>().unwrap(), kind);
        }
        assert!("denial".parse::<ShareKind>().is_err());
    }
}
