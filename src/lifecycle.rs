//! What happens to an item after it was sent: the pure parts of corrections, retractions,
//! consent and denial consultations (see docs/lifecycle.md).
//!
//! Here are the signed tombstone, the rule that a correction never widens an item's
//! handling, the licence application a consultation starts from, and the test of an
//! "essentially identical transaction". The node (`node::lifecycle`) stores and sends;
//! nothing here does I/O.

use serde::Deserialize;

use crate::{
    identity::{self, Identity, KeyId},
    keys::PartnerKeys,
    pb, report, screen,
};

/// Tombstone format version.
pub const TOMBSTONE_VERSION: u32 = 1;

/// Domain-separation label of a tombstone signature.
const TOMBSTONE_LABEL: &[u8] = b"entente/v1/tombstone\0";

/// How far back a denial counts for a consultation: three years, in milliseconds.
pub const DENIAL_LOOKBACK_MS: i64 = 3 * 365 * 24 * 3600 * 1000 + 24 * 3600 * 1000;

/// The bytes an originator signs for a tombstone: label, version, originator, item id,
/// time, reason and the signing key's id, each length-prefixed or fixed-size
/// (docs/lifecycle.md).
pub fn tombstone_signing_input(t: &pb::Tombstone) -> Vec<u8> {
    let mut out = Vec::with_capacity(TOMBSTONE_LABEL.len() + 80 + t.reason.len());
    out.extend_from_slice(TOMBSTONE_LABEL);
    out.extend_from_slice(&t.version.to_be_bytes());
    put(&mut out, t.originator.as_bytes());
    put(&mut out, &t.item_id);
    out.extend_from_slice(&t.retracted_at_ms.to_be_bytes());
    put(&mut out, t.reason.as_bytes());
    put(&mut out, &t.signer_key_id);
    out
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A tombstone for `item_id`, signed by `me` (the item's originator).
pub fn sign_tombstone(me: &Identity, item_id: [u8; 16], at_ms: i64, reason: &str) -> pb::Tombstone {
    let mut t = pb::Tombstone {
        version: TOMBSTONE_VERSION,
        originator: me.agency.clone(),
        item_id: item_id.to_vec(),
        retracted_at_ms: at_ms,
        reason: reason.to_owned(),
        signer_key_id: me.signing.key_id().0.to_vec(),
        signature: Vec::new(),
    };
    t.signature = me.signing.sign(&tombstone_signing_input(&t)).to_vec();
    t
}

/// Why a tombstone is refused: the reason a receiver gives, and its detail.
pub type TombstoneError = (pb::RefusalReason, String);

/// Checks a tombstone signed by `originator`, whose keys are `keys`: its version, that it
/// names `originator`, its shape, and the originator's signature.
pub fn verify_tombstone(
    t: &pb::Tombstone,
    originator: &str,
    keys: &PartnerKeys,
) -> Result<(), TombstoneError> {
    use pb::RefusalReason::{BadSignature, Malformed, UnknownKey, UnsupportedVersion};
    if t.version != TOMBSTONE_VERSION {
        return Err((
            UnsupportedVersion,
            format!(
                "tombstone format version {} is not supported (this node reads version {TOMBSTONE_VERSION})",
                t.version
            ),
        ));
    }
    if t.originator != originator {
        return Err((
            Malformed,
            format!(
                "the tombstone names originator {:?}, not {originator}",
                t.originator
            ),
        ));
    }
    if t.item_id.len() != 16 {
        return Err((
            Malformed,
            format!(
                "tombstone item_id: expected 16 bytes, found {}",
                t.item_id.len()
            ),
        ));
    }
    let key_id = KeyId::from_slice(&t.signer_key_id).ok_or((
        Malformed,
        "tombstone signer_key_id: expected 16 bytes".to_owned(),
    ))?;
    let public = keys.signing_key(key_id, t.retracted_at_ms).ok_or_else(|| {
        (
            UnknownKey,
            format!("the tombstone is signed by a key {originator} has not registered"),
        )
    })?;
    if identity::verify_signature(&public, &tombstone_signing_input(t), &t.signature) {
        Ok(())
    } else {
        Err((
            BadSignature,
            format!("the tombstone's signature does not verify with {originator}'s key"),
        ))
    }
}

/// Why a correction's handling would widen the original's, if it would. A correction may
/// keep or narrow the handling: a TLP level as strict or stricter, originator control kept,
/// no agency added to releasable-to, a retention limit kept or shortened.
pub fn check_not_wider(original: &pb::Handling, corrected: &pb::Handling) -> Result<(), String> {
    let rank = |t: i32| pb::TlpLevel::try_from(t).unwrap_or_default() as i32;
    let name = |t: i32| report::tlp_name(pb::TlpLevel::try_from(t).unwrap_or_default());
    if rank(corrected.tlp) < rank(original.tlp) {
        return Err(format!(
            "handling.tlp: TLP:{} is wider than the original's TLP:{}",
            name(corrected.tlp),
            name(original.tlp)
        ));
    }
    if original.originator_control && !corrected.originator_control {
        return Err("handling.originator_control: the original is originator-controlled; a correction cannot lift that".into());
    }
    if let Some(added) = corrected
        .releasable_to
        .iter()
        .find(|a| !original.releasable_to.contains(a))
    {
        return Err(format!(
            "handling.releasable_to: {added} is not in the original's releasable-to list; a correction cannot add agencies"
        ));
    }
    if original.retention_days > 0
        && (corrected.retention_days == 0 || corrected.retention_days > original.retention_days)
    {
        return Err(format!(
            "handling.retention_days: the original allows {} days; a correction cannot allow longer",
            original.retention_days
        ));
    }
    Ok(())
}

/// A licence application that this node's agency is assessing, as read from JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// The agency's reference for the application (its case number).
    pub reference: String,
    /// The exporter applying, if given.
    #[serde(default)]
    pub applicant: String,
    /// The parties: the consignee and end user at least.
    pub parties: Vec<Party>,
    /// The goods applied for.
    pub goods: Vec<AppliedGoods>,
    /// Declared country of destination (ISO 3166-1 alpha-2).
    pub destination: String,
    /// Country of the end user, when it differs.
    #[serde(default)]
    pub end_user_country: String,
}

/// A party to a licence application.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// The party's name.
    pub name: String,
    /// "consignee", "end-user", "exporter", "broker", ...
    pub role: String,
    /// ISO 3166-1 alpha-2 country code, if known.
    #[serde(default)]
    pub country: String,
}

/// Goods in a licence application.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliedGoods {
    /// Plain description.
    #[serde(default)]
    pub description: String,
    /// Control-list entry, such as "5A002.a".
    pub control_entry: String,
    /// HS code, if known.
    #[serde(default)]
    pub hs_code: String,
}

/// A licence application file that cannot be used: which file, where, and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {at}: {message}")]
pub struct ApplicationError {
    /// The file (or source) read.
    pub file: String,
    /// The field path, or "line L column C".
    pub at: String,
    /// What is wrong.
    pub message: String,
}

/// Roles whose party must match for a transaction to be essentially identical.
const MATCHED_ROLES: [&str; 2] = ["consignee", "end-user"];

/// Parses and checks a licence application from JSON text read from `file`.
pub fn parse_application(text: &str, file: &str) -> Result<Application, ApplicationError> {
    let err = |at: String, message: String| ApplicationError {
        file: file.to_owned(),
        at,
        message,
    };
    let mut json = serde_json::Deserializer::from_str(text);
    let app: Application = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let at = if path == "." {
            format!("line {} column {}", inner.line(), inner.column())
        } else {
            path
        };
        err(at, inner.to_string())
    })?;
    json.end()
        .map_err(|e| err(".".into(), format!("trailing characters: {e}")))?;
    if app.reference.trim().is_empty() {
        return Err(err("reference".into(), "must not be empty".into()));
    }
    if app.goods.is_empty() {
        return Err(err(
            "goods".into(),
            "at least one item of goods is needed".into(),
        ));
    }
    for (i, g) in app.goods.iter().enumerate() {
        if g.control_entry.trim().is_empty() {
            return Err(err(
                format!("goods[{i}].control_entry"),
                "must not be empty: a consultation is about listed goods".into(),
            ));
        }
    }
    if !app
        .parties
        .iter()
        .any(|p| MATCHED_ROLES.contains(&p.role.as_str()))
    {
        return Err(err(
            "parties".into(),
            "name at least one party with role \"consignee\" or \"end-user\"".into(),
        ));
    }
    for (i, p) in app.parties.iter().enumerate() {
        if p.name.trim().is_empty() {
            return Err(err(
                format!("parties[{i}].name"),
                "must not be empty".into(),
            ));
        }
    }
    for (at, code) in [
        ("destination", &app.destination),
        ("end_user_country", &app.end_user_country),
    ] {
        let required = at == "destination";
        if (required || !code.is_empty()) && !is_country_code(code) {
            return Err(err(
                at.into(),
                format!("{code:?} is not an ISO 3166-1 alpha-2 code (two capital letters)"),
            ));
        }
    }
    Ok(app)
}

fn is_country_code(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// What an application has in common with a denial notification.
#[derive(Debug, Clone, PartialEq)]
pub struct DenialMatch {
    /// The control-list entries both name.
    pub control_entries: Vec<String>,
    /// (application party, denial subject, score) pairs that matched.
    pub parties: Vec<(String, String, f64)>,
}

impl DenialMatch {
    /// A one-line account of the match, for the consultation request's note.
    pub fn describe(&self) -> String {
        let parties: Vec<String> = self
            .parties
            .iter()
            .map(|(a, d, s)| format!("{a} ~ {d} ({s:.2})"))
            .collect();
        format!(
            "same control entry {}; matching party {}",
            self.control_entries.join(", "),
            parties.join("; ")
        )
    }
}

/// Canonical form of a control-list entry for comparison: upper case, no spaces.
fn entry_key(entry: &str) -> String {
    entry
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

/// Whether `application` is an essentially identical transaction to the denial
/// `denial`: a control-list entry in common, and a consignee or end user of the
/// application matching a consignee or end user of the denial at `threshold` or above.
pub fn match_denial(
    application: &Application,
    denial: &pb::Report,
    threshold: f64,
) -> Option<DenialMatch> {
    let wanted: Vec<String> = application
        .goods
        .iter()
        .map(|g| entry_key(&g.control_entry))
        .collect();
    let mut control_entries: Vec<String> = denial
        .goods
        .iter()
        .filter(|g| !g.control_entry.is_empty() && wanted.contains(&entry_key(&g.control_entry)))
        .map(|g| g.control_entry.clone())
        .collect();
    control_entries.sort();
    control_entries.dedup();
    if control_entries.is_empty() {
        return None;
    }
    let mut index = screen::ScreeningIndex::new();
    for (n, subject) in denial.subjects.iter().enumerate() {
        if !MATCHED_ROLES.contains(&subject.role.as_str()) {
            continue;
        }
        index.upsert(
            "denial",
            &pb::WatchlistEntry {
                id: n.to_string(),
                name: subject.name.clone(),
                aliases: subject.aliases.clone(),
                ..Default::default()
            },
        );
    }
    let mut parties = Vec::new();
    for party in application
        .parties
        .iter()
        .filter(|p| MATCHED_ROLES.contains(&p.role.as_str()))
    {
        let query = screen::Query {
            name: party.name.clone(),
            subject_type: None,
            country: None,
            limit: 1,
            min_score: threshold,
        };
        if let Some(hit) = index.search(&query).into_iter().next() {
            parties.push((party.name.clone(), hit.primary_name, hit.score));
        }
    }
    (!parties.is_empty()).then_some(DenialMatch {
        control_entries,
        parties,
    })
}

/// The time a denial was issued: its denial date (YYYY-MM-DD, midnight UTC) when given and
/// readable, else the item's creation time.
pub fn denial_time_ms(denial: &pb::Report, created_at_ms: i64) -> i64 {
    time::format_description::parse("[year]-[month]-[day]")
        .ok()
        .and_then(|format| time::Date::parse(&denial.denial_date, &format).ok())
        .map_or(created_at_ms, |date| {
            date.midnight().assume_utc().unix_timestamp() * 1000
        })
}

/// The application in the form a consultation request carries.
pub fn summary(application: &Application) -> pb::ApplicationSummary {
    pb::ApplicationSummary {
        reference: application.reference.clone(),
        control_entries: application
            .goods
            .iter()
            .map(|g| g.control_entry.clone())
            .collect(),
        parties: application
            .parties
            .iter()
            .filter(|p| MATCHED_ROLES.contains(&p.role.as_str()))
            .map(|p| format!("{} ({})", p.name, p.role))
            .collect(),
        destination: application.destination.clone(),
    }
}

/// The kind an item body must be sent as.
pub fn body_kind(body: &pb::item::Body) -> pb::ItemKind {
    use pb::item::Body;
    match body {
        Body::Report(r) => pb::ItemKind::try_from(r.kind).unwrap_or_default(),
        Body::WatchlistDelta(_) => pb::ItemKind::WatchlistDelta,
        Body::Correction(_) => pb::ItemKind::Correction,
        Body::Retraction(_) => pb::ItemKind::Retraction,
        Body::ConsentRequest(_) | Body::ConsentAnswer(_) => pb::ItemKind::Consent,
        Body::ConsultationRequest(_) | Body::ConsultationReply(_) | Body::UndercutNotice(_) => {
            pb::ItemKind::Consultation
        }
    }
}

/// True for the kinds of the lifecycle messages: they concern an item exchanged before,
/// and are accepted from a partner whatever the inbound policy's `accept` list says.
pub fn is_lifecycle_kind(kind: pb::ItemKind) -> bool {
    matches!(
        kind,
        pb::ItemKind::Correction
            | pb::ItemKind::Retraction
            | pb::ItemKind::Consent
            | pb::ItemKind::Consultation
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{identity::SigningKey, keys::PartnerKeys};

    fn identity(agency: &str, seed: u8) -> Identity {
        Identity {
            agency: agency.to_owned(),
            signing: SigningKey::from_seed(&[seed; 32]),
            encryption: crate::identity::EncryptionKey::derive(&[seed; 32]),
        }
    }

    fn keys_of(me: &Identity) -> PartnerKeys {
        PartnerKeys {
            current: me.public_keys(),
            tls_pin: None,
            announced_at_ms: 0,
            retired: Vec::new(),
        }
    }

    #[test]
    fn a_tombstone_verifies_only_unchanged_from_its_originator() {
        let a = identity("AA-ONE", 1);
        let t = sign_tombstone(&a, [7; 16], 1_780_000_000_000, "forged invoice");
        verify_tombstone(&t, "AA-ONE", &keys_of(&a)).unwrap();
        for change in [
            |t: &mut pb::Tombstone| t.reason = "other".into(),
            |t: &mut pb::Tombstone| t.item_id = vec![8; 16],
            |t: &mut pb::Tombstone| t.retracted_at_ms += 1,
            |t: &mut pb::Tombstone| t.signature[0] ^= 1,
        ] {
            let mut changed = t.clone();
            change(&mut changed);
            let (reason, err) = verify_tombstone(&changed, "AA-ONE", &keys_of(&a)).unwrap_err();
            assert_eq!(reason, pb::RefusalReason::BadSignature, "{err}");
            assert!(err.contains("does not verify"), "{err}");
        }
        let (_, err) = verify_tombstone(&t, "CC-THREE", &keys_of(&a)).unwrap_err();
        assert!(err.contains("names originator"), "{err}");
        let c = identity("CC-THREE", 3);
        let (reason, err) = verify_tombstone(&t, "AA-ONE", &keys_of(&c)).unwrap_err();
        assert_eq!(reason, pb::RefusalReason::UnknownKey, "{err}");
        assert!(err.contains("not registered"), "{err}");
        let mut future = t.clone();
        future.version = 2;
        let (reason, _) = verify_tombstone(&future, "AA-ONE", &keys_of(&a)).unwrap_err();
        assert_eq!(reason, pb::RefusalReason::UnsupportedVersion);
    }

    #[test]
    fn the_tombstone_signature_covers_the_signing_key_id() {
        let a = identity("AA-ONE", 1);
        let t = sign_tombstone(&a, [7; 16], 1_780_000_000_000, "forged invoice");
        let mut other = t.clone();
        other.signer_key_id[0] ^= 1;
        assert_ne!(tombstone_signing_input(&t), tombstone_signing_input(&other));
        assert!(tombstone_signing_input(&t).starts_with(b"entente/v1/tombstone\0"));
    }

    fn handling(tlp: pb::TlpLevel, oc: bool, releasable: &[&str], days: u32) -> pb::Handling {
        pb::Handling {
            tlp: tlp as i32,
            originator_control: oc,
            releasable_to: releasable.iter().map(|s| s.to_string()).collect(),
            retention_days: days,
        }
    }

    #[test]
    fn a_correction_may_keep_or_narrow_the_handling_but_never_widen_it() {
        use pb::TlpLevel::*;
        let original = handling(Amber, true, &["DE-BAFA", "JP-METI"], 90);
        for narrower in [
            original.clone(),
            handling(AmberStrict, true, &["DE-BAFA"], 30),
            handling(Red, true, &[], 90),
        ] {
            check_not_wider(&original, &narrower).unwrap();
        }
        for (wider, field) in [
            (handling(Green, true, &["DE-BAFA"], 90), "handling.tlp"),
            (
                handling(Amber, false, &["DE-BAFA"], 90),
                "handling.originator_control",
            ),
            (
                handling(Amber, true, &["DE-BAFA", "US-BIS"], 90),
                "handling.releasable_to",
            ),
            (handling(Amber, true, &[], 0), "handling.retention_days"),
            (handling(Amber, true, &[], 120), "handling.retention_days"),
        ] {
            let err = check_not_wider(&original, &wider).unwrap_err();
            assert!(err.starts_with(field), "{err}");
        }
    }

    /// The example application, which repeats the sample denial.
    const APPLICATION: &str = include_str!("../examples/applications/lic-2026-0042.json");

    fn denial() -> pb::Report {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/reports/denial-dual-use.json"
        ))
        .unwrap();
        crate::report::parse_report_json(&text, "denial").unwrap()
    }

    #[test]
    fn an_application_with_the_same_entry_and_consignee_repeats_the_denial() {
        let app = parse_application(APPLICATION, "app.json").unwrap();
        let m = match_denial(&app, &denial(), 0.85).unwrap();
        assert_eq!(m.control_entries, ["5A002.a"]);
        assert_eq!(m.parties.len(), 1);
        assert_eq!(m.parties[0].1, "Caldera Secure Networks LLC");
        assert!(m.describe().contains("5A002.a"), "{}", m.describe());

        // Other goods, or only a broker in common: not essentially identical.
        let mut other_goods = app.clone();
        other_goods.goods[0].control_entry = "5A002.b".into();
        assert!(match_denial(&other_goods, &denial(), 0.85).is_none());
        let mut other_party = app.clone();
        other_party.parties[0].name = "Unrelated Trading Co".into();
        assert!(match_denial(&other_party, &denial(), 0.85).is_none());
        let mut end_user = app;
        end_user.parties[0] = Party {
            name: "Eastern Relay Communications".into(),
            role: "end-user".into(),
            country: String::new(),
        };
        assert!(match_denial(&end_user, &denial(), 0.85).is_some());
    }

    #[test]
    fn a_bad_application_file_is_refused_naming_the_field() {
        let cases = [
            (
                APPLICATION.replace("\"LIC-2026-0042\"", "\"  \""),
                "reference",
            ),
            (
                APPLICATION.replace("\"5a002.A\"", "\"\""),
                "goods[0].control_entry",
            ),
            (
                APPLICATION.replace("\"consignee\"", "\"exporter\""),
                "parties",
            ),
            (
                APPLICATION.replace("\"destination\": \"KZ\"", "\"destination\": \"Kazakhstan\""),
                "destination",
            ),
            (
                APPLICATION.replace("\"applicant\"", "\"aplicant\""),
                "aplicant",
            ),
            (
                APPLICATION.replace("\"goods\": [", "\"goods\": 5, \"x\": ["),
                "goods",
            ),
            ("{".to_owned(), "line"),
        ];
        for (text, at) in cases {
            let err = parse_application(&text, "app.json").unwrap_err();
            let shown = err.to_string();
            assert!(shown.starts_with("app.json: "), "{shown}");
            assert!(shown.contains(at), "{at}: {shown}");
        }
    }

    #[test]
    fn a_denial_dates_from_its_denial_date() {
        let d = denial();
        assert_eq!(denial_time_ms(&d, 5), 1_710_720_000_000);
        let mut undated = d;
        undated.denial_date.clear();
        assert_eq!(denial_time_ms(&undated, 5), 5);
    }
}
